"""A sandbox backend with no isolation: the command runs as a plain host process.

For a learner's own machine (``python -m scorer check``) and as the benchmark floor for
the isolating backends. It keeps the interface and the layout but protects nothing:
learner code can read and write anything the calling user can. Never use it on the server.

Mounts are emulated under a private temporary root. Each ``Mount.target`` becomes a
symlink ``<root><target>`` to its host path, except the mount at the working directory,
which becomes a real folder holding one symlink per top-level entry: the kernel resolves
``..`` from the real cwd, so ``../1_data/`` must find ``<root>/work/1_data`` as in the
sandbox. Command arguments and environment values that start with a mount target (or
``/out``) are rewritten to the emulated path, and a ``python``/``python3`` command runs
with this interpreter (``sys.executable``) so the host's venv provides numpy and IPython.

Limits honoured: wall time (process-group SIGKILL) and the per-stream capture cap.
Memory, pids, CPUs and tmpfs are not enforced (RLIMIT_AS would break CUDA and torch),
so ``oom_killed`` is always False: a MemoryError is reported by the harness itself.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.base import CappedStream, InfrastructureError, Mount, RunResult, RunSpec

OUT_TARGET = "/out"
# After the main process exits, how long we keep draining pipes held open by leftovers.
DRAIN_GRACE_SECONDS = 1.0
# Host variables worth passing through; everything else is dropped for repeatability.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT", "LD_LIBRARY_PATH")


@dataclass
class _Live:
    process: subprocess.Popen[bytes]
    started: float


class PathMap:
    """Sandbox paths → emulated host paths under a temporary root."""

    def __init__(self, root: Path, targets: Sequence[str]) -> None:
        self.root = root
        # Longest first so /work/submission wins over /work.
        self.targets = sorted({t.rstrip("/") or "/" for t in targets}, key=len, reverse=True)

    def rewrite(self, value: str) -> str:
        for target in self.targets:
            if value == target or value.startswith(target + "/"):
                return str(self.root) + value
        return value


def build_layout(root: Path, spec: RunSpec) -> PathMap:
    """Create the emulated mount tree under ``root`` and return its path map."""
    mounts = [*spec.mounts, Mount(host=spec.out_dir, target=OUT_TARGET, read_only=False)]
    for mount in sorted(mounts, key=lambda m: m.target.count("/")):
        place = root / mount.target.lstrip("/")
        place.parent.mkdir(parents=True, exist_ok=True)
        host = Path(mount.host).resolve()
        if mount.target.rstrip("/") == spec.workdir.rstrip("/") and host.is_dir():
            place.mkdir()
            for child in host.iterdir():
                (place / child.name).symlink_to(child)
        else:
            place.symlink_to(host)
    (root / "tmp").mkdir(exist_ok=True)
    return PathMap(root, [m.target for m in mounts])


def build_env(spec: RunSpec, paths: PathMap) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env.update(
        MPLBACKEND="Agg",
        # No __pycache__ written into the learner's folder through the symlinks.
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1",
        PYTHONIOENCODING="utf-8",
        CUDA_VISIBLE_DEVICES=spec.gpu or "",
    )
    env.update({k: paths.rewrite(v) for k, v in spec.env.items()})
    # The sandbox's /tmp is a private tmpfs; here it is a private folder (a spec's
    # HOME=/tmp would otherwise point at the host's shared /tmp).
    tmp = str(paths.root / "tmp")
    env.update(HOME=tmp, TMPDIR=tmp)
    return env


def build_command(command: Sequence[str], paths: PathMap) -> list[str]:
    argv = [paths.rewrite(arg) for arg in command]
    if argv and Path(argv[0]).name in ("python", "python3"):
        argv[0] = sys.executable
    return argv


class ProcessBackend:
    """``SandboxBackend`` that runs the command as a child process group, unisolated."""

    name = "process"
    # The harness's "python3" is rewritten to this worker's own interpreter (build_command).
    python = "python3"

    def __init__(self) -> None:
        self._live: dict[str, _Live] = {}

    def image_digest(self, image: str) -> str:
        return "host"

    def run(self, spec: RunSpec) -> RunResult:
        root = Path(tempfile.mkdtemp(prefix="katakana-proc-"))
        try:
            paths = build_layout(root, spec)
            return self._run_in(spec, paths)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def kill(self, name: str) -> None:
        live = self._live.get(name)
        if live is not None:
            _kill_group(live.process)

    def reap(self, *, older_than_seconds: float) -> list[str]:
        now = time.monotonic()
        old = [n for n, live in self._live.items() if now - live.started > older_than_seconds]
        for name in old:
            self.kill(name)
        return old

    def list_runs(self) -> list[str]:
        return [name for name, live in self._live.items() if live.process.poll() is None]

    def why_killed(self, name: str, *, since: float) -> str | None:
        return None  # a child of this worker: nothing else kills it

    def _run_in(self, spec: RunSpec, paths: PathMap) -> RunResult:
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                build_command(spec.command, paths),
                cwd=paths.rewrite(spec.workdir),
                env=build_env(spec, paths),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Own process group, so the wall limit kills everything it started.
                start_new_session=True,
            )
        except OSError as exc:
            raise InfrastructureError(f"cannot start {spec.command[:1]}: {exc}") from exc
        self._live[spec.name] = _Live(process, started)
        try:
            out, err, timed_out = _pump(
                process, spec.limits.stream_cap_bytes, started + spec.limits.wall_seconds
            )
        finally:
            _kill_group(process)
            process.wait()
            self._live.pop(spec.name, None)
        return RunResult(
            exit_code=process.returncode,
            timed_out=timed_out,
            oom_killed=False,
            stdout=out.value(),
            stderr=err.value(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            wall_seconds=time.monotonic() - started,
            backend=self.name,
            image=spec.image,
            image_digest=self.image_digest(spec.image),
        )


def _pump(
    process: subprocess.Popen[bytes], cap: int, deadline: float
) -> tuple[CappedStream, CappedStream, bool]:
    """Read both pipes incrementally (never unbounded) until EOF, exit or the deadline."""
    assert process.stdout is not None and process.stderr is not None
    captures = {
        process.stdout.fileno(): CappedStream(cap),
        process.stderr.fileno(): CappedStream(cap),
    }
    out, err = captures[process.stdout.fileno()], captures[process.stderr.fileno()]
    selector = selectors.DefaultSelector()
    for stream in (process.stdout, process.stderr):
        os.set_blocking(stream.fileno(), False)
        selector.register(stream.fileno(), selectors.EVENT_READ)
    timed_out = False
    drain_until: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline and process.poll() is None:
                timed_out = True
                _kill_group(process)
                deadline = float("inf")
                drain_until = now + DRAIN_GRACE_SECONDS
            if drain_until is None and process.poll() is not None:
                # Leftover children may keep the pipes open: kill them, drain briefly.
                _kill_group(process)
                drain_until = now + DRAIN_GRACE_SECONDS
            if drain_until is not None and now >= drain_until:
                break
            limit = min(deadline, drain_until or deadline)
            for key, _ in selector.select(timeout=max(0.0, min(0.1, limit - now))):
                fd = int(key.fd)
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if data:
                    captures[fd].feed(data)
                else:
                    selector.unregister(fd)
    finally:
        selector.close()
        process.stdout.close()
        process.stderr.close()
    return out, err, timed_out


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
