"""Host-side helpers every isolating backend shares: the run's host paths and its outputs.

The Docker, warm-Docker and bubblewrap backends all prepare the run's host paths for the
sandbox user, watch the run's capped ``/out`` and copy its outputs out afterwards. They
live here, with no engine SDK, so bubblewrap does not pull in Docker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from sandbox.base import RunResult, RunSpec
from sandbox.outfs import OutFs, copy_out

SANDBOX_UID = 65534
# RLIMIT_FSIZE for every file a run writes. /out is a host directory without a quota of
# its own: this caps one file (a 100 GB predictions file); OutputWatcher caps the total.
FILE_SIZE_CAP_BYTES = 128 << 20
# How often OutputWatcher scans /out. The overshoot past the cap is what the run writes
# in one interval plus the kill (the page cache takes ~2 GB/s: 0.2 s let 490 MiB through
# in test_warm, 0.05 s far less). A scan is at most out_max_files stat calls.
OUT_WATCH_SECONDS = 0.05


class OutputWatcher:
    """Watches a run's ``/out`` host directory and calls ``on_exceeded`` once past a cap.

    The kernel caps ``/out`` (``outfs``); this says so early, as a verdict: it kills the run
    once the filesystem's usage (``fs``, which counts files unlinked while open) or the
    visible tree passes the caps. A scan stops counting as soon as a cap is passed, so a
    tree of a million entries costs no more than ``max_files`` stat calls.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        max_bytes: int,
        max_files: int,
        on_exceeded: Callable[[], None],
        interval: float = OUT_WATCH_SECONDS,
        fs: OutFs | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.fs = fs
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.exceeded = False
        self._on_exceeded = on_exceeded
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="out-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> bool:
        """Stop watching, check one last time (the final interval) and return ``exceeded``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if not self.exceeded and self.over_cap():
            self.exceeded = True
        return self.exceeded

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            if self.over_cap():
                self.exceeded = True
                with contextlib.suppress(Exception):  # the run may be gone already
                    self._on_exceeded()
                return

    def over_cap(self) -> bool:
        used = self.fs.used_bytes() if self.fs is not None else None
        if used is not None and used > self.max_bytes:
            return True
        total, count = 0, 0
        todo = [str(self.out_dir)]
        while todo:
            try:
                entries = list(os.scandir(todo.pop()))
            except OSError:
                continue  # removed meanwhile, or not a directory any more
            for entry in entries:
                count += 1
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                # The larger of size and allocated blocks: sparse files count in full.
                total += max(info.st_size, info.st_blocks * 512)
                if stat.S_ISDIR(info.st_mode):
                    todo.append(entry.path)
                if total > self.max_bytes or count > self.max_files:
                    return True
        return False


def discard_outputs(out_dir: Path) -> None:
    """Delete everything a run left in ``out_dir`` without following any link."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(out_dir):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


def prepare_host_paths(spec: RunSpec) -> None:
    """Make the run's host paths usable by uid 65534 inside the sandbox.

    ``out_dir`` becomes mode 0777: the sandbox user must create files there. Trade-off
    accepted: any local user who can reach the directory could write into it during the
    run, so the run directory's parent must be a root-owned 0700 directory (mkdtemp).
    Chowning to 65534 instead would let the host's ``nobody`` services own our files.
    The backends bind a capped tmpfs (``outfs``) as ``/out``, not this directory, and
    copy the outputs here after the run.
    Read-only mounts get o+r (files) and o+rx (directories); symlinks are never followed
    (``chmod`` would follow them, so they are skipped after ``lstat``).
    """
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(spec.out_dir, 0o777)
    for mount in spec.mounts:
        for path in _walk_no_symlinks(Path(mount.host)):
            info = path.lstat()
            if stat.S_ISDIR(info.st_mode):
                wanted = info.st_mode | stat.S_IROTH | stat.S_IXOTH
            elif stat.S_ISREG(info.st_mode):
                wanted = info.st_mode | stat.S_IROTH
            else:
                continue
            if wanted != info.st_mode:
                os.chmod(path, stat.S_IMODE(wanted))


def _walk_no_symlinks(root: Path) -> Iterator[Path]:
    if root.is_symlink() or not root.exists():
        return
    yield root
    if root.is_dir():
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if not path.is_symlink():
                    yield path


def finish_outputs(result: RunResult, outfs: OutFs, spec: RunSpec) -> None:
    """Copy a dead run's capped outputs into ``spec.out_dir`` (within the byte cap)."""
    if result.output_exceeded:
        return
    if not copy_out(outfs.path, spec.out_dir, spec.limits.out_max_bytes):
        discard_outputs(spec.out_dir)
        result.output_exceeded = True
