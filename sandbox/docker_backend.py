"""Docker backend: one fresh, hardened container per run, never reused, never exec'ed.

The profile follows docs/architecture.md and the baseline in anchors-sandbox.md §1d:
no network, read-only root, uid 65534, all capabilities dropped, no-new-privileges,
Docker's default seccomp profile (and, stacked on it, the image entrypoint's own filter,
``sandbox/image/confine.py``), explicit pids/memory (no swap)/CPU/nofile/core limits,
a size-capped ``/tmp`` tmpfs, a private IPC namespace, ``--init`` to reap zombies, no TTY,
stdin closed. The log driver is ``none`` so a chatty program cannot fill the host disk with
json-file logs; stdout/stderr are captured through ``attach`` by a thread that keeps at most
``stream_cap_bytes`` per stream and drains the rest. The wall limit is enforced here, by the
worker, with ``container.kill()`` (SIGKILL, no grace: a SIGTERM handler buys nothing); a
reaper (``reap``) is the backstop when the worker itself dies.

``/out`` is a tmpfs of the run's own, mounted by the worker and sized by
``Limits.out_max_bytes``/``out_max_files`` (``sandbox/outfs.py``): the kernel refuses what
passes it, files unlinked while open included. An ``OutputWatcher`` thread reads that
filesystem's usage and the tree every 0.05 s and kills the container past the caps
(``RunResult.output_exceeded``); what the run wrote is then deleted. Otherwise the outputs
are copied into the spec's plain ``out_dir`` once the container is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import DeviceRequest, LogConfig, Ulimit
from docker.types import Mount as DockerMount

from sandbox.base import (
    DEFAULT_DEPLOYMENT,
    DEPLOYMENT_LABEL,
    RUN_LABEL,
    CappedStream,
    InfrastructureError,
    RunResult,
    RunSpec,
)
from sandbox.outfs import OutFs, capped_out, copy_out

SANDBOX_UID = 65534
# RLIMIT_FSIZE for every file a run writes. /out is a host directory without a quota of
# its own: this caps one file (a 100 GB predictions file); OutputWatcher caps the total.
FILE_SIZE_CAP_BYTES = 128 << 20
# How long to wait for the attach stream to drain after the container is gone.
STREAM_JOIN_SECONDS = 10.0
# How often OutputWatcher scans /out. The overshoot past the cap is what the run writes
# in one interval plus the kill (the page cache takes ~2 GB/s: 0.2 s let 490 MiB through
# in test_warm, 0.05 s far less). A scan is at most out_max_files stat calls.
OUT_WATCH_SECONDS = 0.05
# Pre-started containers of the warm pool (sandbox/warm.py) carry this label with their
# maximum idle time: the reaper adds it to the age limit so it never kills a live warm
# run whose container was created before the job began.
WARM_LABEL = "katakana.warm.idle_max"


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


class DockerBackend:
    """Runs a ``RunSpec`` in a fresh container through the Docker engine API."""

    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        runtime: str | None = None,
        on_started: Callable[[dict[str, Any]], None] | None = None,
        deployment: str = DEFAULT_DEPLOYMENT,
    ) -> None:
        # The run prefix of this deployment: every container is labelled with it and
        # ``reap`` touches no other (issue 13: a test's reap killed another's sandbox).
        self.deployment = deployment
        try:
            self._client = client or docker.from_env(timeout=60)
        except DockerException as exc:
            raise InfrastructureError(f"docker engine unavailable: {exc}") from exc
        self._runtime = runtime
        # Receives ``container.attrs`` (docker inspect) right after start: tests assert
        # on Mounts and Env; production may log them.
        self._on_started = on_started

    def run(self, spec: RunSpec) -> RunResult:
        self.kill(spec.name)  # a previous attempt's leftover never runs beside this one
        prepare_host_paths(spec)
        digest = self.image_digest(spec.image)
        with capped_out(spec.out_dir, spec.limits) as outfs:
            # The container writes to the capped tmpfs; the outputs reach out_dir after.
            inner = dataclasses.replace(spec, out_dir=outfs.path)
            with _engine_errors("create"):
                container = self._client.containers.create(**self._create_kwargs(inner))
            try:
                result = self._run_container(container, inner, digest, outfs)
            except BaseException:
                # Keep the run's own error: a removal failing too (the engine went away)
                # would otherwise replace it in the logs. The reaper removes what is left.
                with contextlib.suppress(InfrastructureError):
                    self._remove(container)
                raise
            self._remove(container)
            finish_outputs(result, outfs, spec)
        return result

    def _run_container(
        self, container: Any, spec: RunSpec, digest: str, outfs: OutFs | None = None
    ) -> RunResult:
        cap = spec.limits.stream_cap_bytes
        out, err = CappedStream(cap), CappedStream(cap)
        reader = self.attach(container, out.feed, err.feed)
        with _engine_errors("start"):
            container.start()
        started = time.monotonic()
        if self._on_started is not None:
            with _engine_errors("inspect"):
                container.reload()
            self._on_started(container.attrs)
        ended = supervise(container, spec, spec.out_dir, started, outfs)
        reader.join(STREAM_JOIN_SECONDS)
        return collect_result(container, spec, ended, out, err, self.name, digest)

    def attach(
        self, container: Any, on_stdout: Callable[[bytes], None], on_stderr: Callable[[bytes], None]
    ) -> threading.Thread:
        """Attach to a created container's streams (before start: nothing is missed)."""
        with _engine_errors("attach"):
            frames = self._client.api.attach(
                container.id, stdout=True, stderr=True, stream=True, logs=False, demux=True
            )
        reader = threading.Thread(
            target=_drain, args=(frames, on_stdout, on_stderr), name="attach", daemon=True
        )
        reader.start()
        return reader

    def _create_kwargs(self, spec: RunSpec) -> dict[str, Any]:
        limits = spec.limits
        environment = {**spec.env, "HOME": "/tmp"}
        mounts = [
            DockerMount(target=m.target, source=str(m.host), type="bind", read_only=m.read_only)
            for m in spec.mounts
        ]
        mounts.append(DockerMount(target="/out", source=str(spec.out_dir), type="bind"))
        kwargs: dict[str, Any] = {
            "image": spec.image,
            "command": list(spec.command),
            "name": spec.name,
            "labels": {**spec.labels, RUN_LABEL: spec.name, DEPLOYMENT_LABEL: self.deployment},
            "working_dir": spec.workdir,
            "hostname": "sandbox",  # the default (container id) is an identifier; B10
            "user": f"{SANDBOX_UID}:{SANDBOX_UID}",
            "environment": environment,
            "network_mode": "none",
            "read_only": True,
            "cap_drop": ["ALL"],
            # Default seccomp profile: left implicit, never "unconfined".
            "security_opt": ["no-new-privileges"],
            "pids_limit": limits.pids,
            "mem_limit": f"{limits.memory_mb}m",
            "memswap_limit": f"{limits.memory_mb}m",  # equal to mem_limit: no swap
            "nano_cpus": int(limits.cpus * 1e9),
            "init": True,
            "ipc_mode": "private",
            "shm_size": f"{limits.shm_mb}m",
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={limits.tmpfs_mb}m"},
            "ulimits": [
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="fsize", soft=FILE_SIZE_CAP_BYTES, hard=FILE_SIZE_CAP_BYTES),
            ],
            "mounts": mounts,
            "log_config": LogConfig(type="none"),
            "tty": False,
            "stdin_open": False,
            "detach": True,
        }
        if self._runtime:
            kwargs["runtime"] = self._runtime
        if spec.gpu is not None:
            kwargs["device_requests"] = [
                DeviceRequest(device_ids=[spec.gpu], capabilities=[["gpu"]])
            ]
            environment["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility"
        return kwargs

    def kill(self, name: str) -> None:
        with _engine_errors("kill"):
            try:
                container = self._client.containers.get(name)
            except NotFound:
                return
            self._remove(container)

    def _remove(self, container: Any) -> None:
        try:
            container.remove(force=True)  # force = SIGKILL first
        except NotFound:
            pass
        except APIError as exc:
            # 409: removal already in progress (a concurrent reaper); that is success.
            if exc.status_code != 409:
                raise InfrastructureError(f"docker remove failed: {exc}") from exc
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise InfrastructureError(f"docker remove failed: {exc}") from exc

    def reap(self, *, older_than_seconds: float) -> list[str]:
        now = time.time()
        reaped: list[str] = []
        with _engine_errors("list"):
            containers = self._client.containers.list(
                all=True,
                sparse=True,
                filters={"label": [RUN_LABEL, f"{DEPLOYMENT_LABEL}={self.deployment}"]},
            )
        for container in containers:
            labels = container.attrs.get("Labels") or {}
            limit = older_than_seconds + _warm_idle_max(labels)
            if now - float(container.attrs.get("Created", now)) < limit:
                continue
            self._remove(container)
            reaped.append(labels.get(RUN_LABEL) or container.id)
        return reaped

    def image_digest(self, image: str) -> str:
        with _engine_errors("image inspect"):
            try:
                return str(self._client.images.get(image).id)
            except ImageNotFound as exc:
                raise InfrastructureError(f"sandbox image {image!r} is missing") from exc


def _warm_idle_max(labels: dict[str, str]) -> float:
    # A warm container may wait this long for its job before the job's wall limit starts.
    try:
        return max(0.0, float(labels.get(WARM_LABEL, 0)))
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class RunEnd:
    """How a supervised run ended: by itself, at the wall limit, or past the /out cap."""

    timed_out: bool
    output_exceeded: bool
    wall_seconds: float


def finish_outputs(result: RunResult, outfs: OutFs, spec: RunSpec) -> None:
    """Copy a dead run's capped outputs into ``spec.out_dir`` (within the byte cap)."""
    if result.output_exceeded:
        return
    if not copy_out(outfs.path, spec.out_dir, spec.limits.out_max_bytes):
        discard_outputs(spec.out_dir)
        result.output_exceeded = True


def supervise(
    container: Any, spec: RunSpec, out_dir: Path, started: float, outfs: OutFs | None = None
) -> RunEnd:
    """Wait for a started run until it exits or its wall limit (from ``started``) passes.

    Kills it at the wall limit or as soon as ``out_dir`` passes the output caps; in the
    latter case the outputs are discarded. Shared by the cold and the warm backend.
    """
    limits = spec.limits

    def kill_for_output() -> None:
        container.kill()

    watcher = OutputWatcher(
        out_dir,
        max_bytes=limits.out_max_bytes,
        max_files=limits.out_max_files,
        on_exceeded=kill_for_output,
        fs=outfs,
    )
    watcher.start()
    timed_out = False
    try:
        remaining = limits.wall_seconds - (time.monotonic() - started)
        container.wait(timeout=max(remaining, 0.01))
    except requests.exceptions.RequestException as exc:
        # ReadTimeout (or a ConnectionError wrapping it) once the wall limit passed;
        # earlier than that it is the engine failing, not the learner's clock.
        if time.monotonic() - started < limits.wall_seconds - 1.0:
            watcher.stop()
            raise InfrastructureError(f"docker wait failed: {exc}") from exc
        timed_out = True
        with _engine_errors("kill"), contextlib.suppress(NotFound):
            container.kill()
        with _engine_errors("wait"):
            container.wait(timeout=30)
    except DockerException as exc:
        watcher.stop()
        raise InfrastructureError(f"docker wait failed: {exc}") from exc
    wall = time.monotonic() - started
    exceeded = watcher.stop()
    if exceeded:
        discard_outputs(out_dir)
    return RunEnd(timed_out=timed_out and not exceeded, output_exceeded=exceeded, wall_seconds=wall)


def collect_result(
    container: Any,
    spec: RunSpec,
    ended: RunEnd,
    out: CappedStream,
    err: CappedStream,
    backend: str,
    digest: str,
) -> RunResult:
    """The ``RunResult`` of a run that has ended, from ``docker inspect`` and the streams."""
    with _engine_errors("inspect"):
        container.reload()
    state = container.attrs.get("State", {})
    return RunResult(
        exit_code=None if ended.timed_out else state.get("ExitCode"),
        timed_out=ended.timed_out,
        oom_killed=bool(state.get("OOMKilled")),
        stdout=out.value(),
        stderr=err.value(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        wall_seconds=ended.wall_seconds,
        backend=backend,
        image=spec.image,
        image_digest=digest,
        output_exceeded=ended.output_exceeded,
    )


def _drain(
    frames: Iterator[tuple[bytes | None, bytes | None]],
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
) -> None:
    # Reads until the container's streams close; memory stays bounded by the sinks' caps.
    with contextlib.suppress(Exception):
        for stdout_chunk, stderr_chunk in frames:
            if stdout_chunk:
                on_stdout(stdout_chunk)
            if stderr_chunk:
                on_stderr(stderr_chunk)


@contextlib.contextmanager
def _engine_errors(action: str) -> Iterator[None]:
    """Any failure of the engine itself is infrastructure, never the learner's fault."""
    try:
        yield
    except InfrastructureError:
        raise
    except (DockerException, requests.exceptions.RequestException) as exc:
        raise InfrastructureError(f"docker {action} failed: {exc}") from exc
