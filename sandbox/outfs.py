"""A kernel cap on ``/out``: each run writes into a tmpfs of its own, sized by its limits.

Why not a watcher alone: a polling watcher sums the files it can see, and a run that
unlinks a file while keeping it open writes on, unseen (2.43 GiB against a 0.25 GiB cap
before this module). A tmpfs with ``size`` and ``nr_inodes`` refuses the write itself
(ENOSPC), whatever the run hides, and its ``statvfs`` counts the hidden bytes too, so the
watcher (``hostside.OutputWatcher``) kills the run as soon as the filesystem, not
just the visible tree, passes ``out_max_bytes``. The tmpfs is a little larger than the cap
(``SLACK``) so a run that passes the cap is seen and killed instead of silently stalling.
Its pages are memory, charged to the writer's memory cgroup (the sandbox's limit).

The mount is made by the worker on the host (it runs as root beside the engine, so the
Docker daemon and bubblewrap see it) and is bind-mounted as ``/out``. After the run, the
capped tree is copied into the caller's plain ``out_dir`` (bounded by the cap) and the
tmpfs is unmounted. Where the worker cannot mount (a worker in a container without
``CAP_SYS_ADMIN``), the run directory itself must sit on a fixed-size filesystem of at
most ``KATAKANA_RUNS_FS_MAX_MB`` (``deploy/prepare-host.sh``); otherwise the run is refused
as an infrastructure fault rather than run uncapped. A worker killed with ``kill -9``
leaves its mounts behind: ``release_under`` (run by the sweeper) unmounts them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.base import InfrastructureError, Limits

# The mount's source name: how release_under tells our tmpfs mounts from anyone else's.
SOURCE = "katakana-out"
# Headroom above the cap: room for the watcher to see the excess (and a page per file).
SLACK_BYTES = 8 << 20
SHARED_FS_ENV = "KATAKANA_RUNS_FS_MAX_MB"
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@dataclass
class OutFs:
    """``path`` is a directory whose writes the kernel caps (a private tmpfs, or a shared
    fixed-size filesystem when ``private`` is False)."""

    path: Path
    max_bytes: int
    private: bool

    @classmethod
    def mount(cls, path: Path, limits: Limits) -> OutFs:
        """Mount a capped tmpfs on the existing empty directory ``path``."""
        size = limits.out_max_bytes + SLACK_BYTES
        # Inodes are capped by the kernel too: a tree of a million empty files never starts.
        inodes = limits.out_max_files + 16
        options = f"size={size},nr_inodes={inodes},mode=0777".encode()
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        if _libc.mount(SOURCE.encode(), str(path).encode(), b"tmpfs", flags, options) == 0:
            return cls(path, limits.out_max_bytes, private=True)
        error = ctypes.get_errno()
        shared = shared_fs_cap_bytes()
        if shared and filesystem_bytes(path) <= shared:
            os.chmod(path, 0o777)
            return cls(path, limits.out_max_bytes, private=False)
        raise InfrastructureError(
            f"cannot cap /out: mounting a tmpfs on {path} failed ({os.strerror(error)}) and "
            f"it is not on a filesystem of at most {SHARED_FS_ENV} MB"
        )

    def used_bytes(self) -> int | None:
        """Bytes the run holds on its tmpfs, hidden (unlinked, open) ones included."""
        if not self.private:
            return None  # a shared filesystem also holds other runs' bytes
        try:
            info = os.statvfs(self.path)
        except OSError:
            return None
        return (info.f_blocks - info.f_bfree) * info.f_frsize

    def release(self) -> None:
        """Unmount (lazily if still busy); idempotent. What the run wrote is gone after."""
        if self.private:
            unmount(self.path)


def shared_fs_cap_bytes() -> int:
    try:
        return max(0, int(os.environ.get(SHARED_FS_ENV, "0"))) << 20
    except ValueError:
        return 0


def filesystem_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_blocks * info.f_frsize


def unmount(path: Path) -> None:
    if _libc.umount2(str(path).encode(), 0) != 0:
        _libc.umount2(str(path).encode(), MNT_DETACH)


@contextlib.contextmanager
def capped_out(next_to: Path, limits: Limits) -> Iterator[OutFs]:
    """A fresh capped directory beside ``next_to`` for one run; unmounted and removed after."""
    path = Path(tempfile.mkdtemp(prefix=".out-", dir=next_to.parent))
    outfs: OutFs | None = None
    try:
        outfs = OutFs.mount(path, limits)
        yield outfs
    finally:
        if outfs is not None:
            outfs.release()
        shutil.rmtree(path, ignore_errors=True)


def copy_out(src: Path, dst: Path, budget: int) -> bool:
    """Copy a dead run's outputs into ``dst`` (files, and links as links; at most ``budget``
    bytes). Returns False (and leaves what was copied) when the budget ran out.

    Only the top level: the host reads a few fixed file names there and nothing below, so
    a folder the run made is left behind, however deep (a tree past PATH_MAX once made
    this copy raise ENAMETOOLONG, an infrastructure retry a learner could trigger at will).
    FIFOs and devices are dropped. The budget stops hard links inside the cap from
    multiplying on the way out.
    """
    left = budget
    for entry in os.scandir(src):
        out = dst / entry.name
        try:
            if entry.is_symlink():
                with contextlib.suppress(FileExistsError):
                    os.symlink(os.readlink(entry.path), out)
            elif entry.is_file(follow_symlinks=False):
                left -= entry.stat(follow_symlinks=False).st_size
                if left < 0:
                    return False
                shutil.copyfile(entry.path, out, follow_symlinks=False)
        except OSError:
            continue  # a name or file the host cannot handle is not one it reads
    return True


def mounts_under(root: Path) -> list[Path]:
    """Our tmpfs mounts below ``root`` (from /proc/self/mountinfo)."""
    found = []
    prefix = str(root.resolve()).rstrip("/") + "/"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) > 4 and len(tail) > 1 and tail[0] == "tmpfs" and tail[1] == SOURCE:
                point = fields[4].encode().decode("unicode_escape")
                if point.startswith(prefix):
                    found.append(Path(point))
    return found


def release_under(root: Path) -> list[Path]:
    """Unmount every capped ``/out`` of ours below ``root``, a run directory its caller
    knows to be dead (the sweeper decides that from the run's lease, or from the pid that
    owned a warm pool's directory): a worker killed with ``kill -9`` leaves them mounted."""
    points = sorted(mounts_under(root), key=lambda p: len(p.parts), reverse=True)
    for point in points:
        unmount(point)
    return points
