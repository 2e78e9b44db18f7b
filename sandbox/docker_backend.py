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
from sandbox.hostside import (
    FILE_SIZE_CAP_BYTES,
    SANDBOX_UID,
    OutputWatcher,
    discard_outputs,
    finish_outputs,
    prepare_host_paths,
)
from sandbox.outfs import OutFs, capped_out

# How long to wait for the attach stream to drain after the container is gone.
STREAM_JOIN_SECONDS = 10.0
# Pre-started containers of the warm pool (sandbox/warm.py) carry this label with their
# maximum idle time: the reaper adds it to the age limit so it never kills a live warm
# run whose container was created before the job began.
WARM_LABEL = "katakana.warm.idle_max"


class DockerBackend:
    """Runs a ``RunSpec`` in a fresh container through the Docker engine API."""

    name = "docker"
    python = "python3"

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

    def _ours(self) -> list[Any]:
        """This deployment's containers, running or not (never another deployment's)."""
        with _engine_errors("list"):
            return list(
                self._client.containers.list(
                    all=True,
                    sparse=True,
                    filters={"label": [RUN_LABEL, f"{DEPLOYMENT_LABEL}={self.deployment}"]},
                )
            )

    def reap(self, *, older_than_seconds: float) -> list[str]:
        now = time.time()
        reaped: list[str] = []
        for container in self._ours():
            labels = container.attrs.get("Labels") or {}
            limit = older_than_seconds + _warm_idle_max(labels)
            if now - float(container.attrs.get("Created", now)) < limit:
                continue
            self._remove(container)
            reaped.append(labels.get(RUN_LABEL) or container.id)
        return reaped

    def list_runs(self) -> list[str]:
        return [
            raw.lstrip("/")
            for container in self._ours()
            for raw in container.attrs.get("Names") or []
        ]

    def why_killed(self, name: str, *, since: float) -> str | None:
        # Only a kill through the API is an engine event; a process that kills itself,
        # or our own wall-limit kill (reported as a timeout), is not asked about.
        with _engine_errors("events"):
            events = self._client.events(
                since=int(since) - 1,
                until=int(time.time()) + 1,
                filters={"container": name, "event": "kill"},
                decode=True,
            )
            signals = [str(e.get("Actor", {}).get("Attributes", {}).get("signal")) for e in events]
        if signals:
            return f"the sandbox was killed through the engine (signal {', '.join(signals)})"
        return None

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
