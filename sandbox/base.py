"""The sandbox interface: what a backend is asked to run and what it reports back.

Every backend (Docker for production, bubblewrap for hosts without Docker, a bare
process for a learner's own machine) takes a ``RunSpec`` and returns a ``RunResult``.
Nothing here imports Django; the scorer builds specs and reads results as plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Every container/process we start carries this label so a reaper can find orphans.
RUN_LABEL = "katakana.run"
# ...and this one, the deployment's run prefix (KATAKANA_RUN_PREFIX): a reaper touches only
# its own deployment's sandboxes, never another's on a shared engine (or another test run's).
DEPLOYMENT_LABEL = "katakana.deployment"
DEFAULT_DEPLOYMENT = "katakana"
TRUNCATION_MARKER = b"\n[... output truncated by the sandbox ...]\n"


class CappedStream:
    """Keeps at most ``cap`` bytes of a stream: its head and, once it overflows, its tail.

    Why the tail too: the legacy contract's score is on the last lines of stdout and a
    traceback ends stderr, so a chatty run must lose its middle, not its end. Memory is
    bounded by ``cap`` whatever the stream's length.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        # The last eighth is kept for the tail (none for tiny caps, where it would not help).
        self.tail_cap = cap // 8 if cap >= 8 * 1024 else 0
        self.head_cap = cap - self.tail_cap
        self._head = bytearray()
        self._tail = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.head_cap - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        if self.tail_cap == 0:
            self.truncated = True
            return
        self._tail += chunk
        if len(self._tail) > self.tail_cap:
            self.truncated = True
            del self._tail[: len(self._tail) - self.tail_cap]

    def value(self) -> bytes:
        if not self.truncated:
            return bytes(self._head + self._tail)
        return bytes(self._head) + TRUNCATION_MARKER + bytes(self._tail)


class InfrastructureError(RuntimeError):
    """The sandbox itself failed (engine down, image missing, GPU broken).

    Never the learner's fault: the submission is retried elsewhere and no quota is charged.
    """


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 300.0
    memory_mb: int = 4096
    pids: int = 256
    cpus: float = 2.0
    tmpfs_mb: int = 512
    shm_mb: int = 1024
    nofile: int = 4096
    # Captured stdout/stderr, per stream; beyond this a truncation marker is appended.
    stream_cap_bytes: int = 1 << 20
    # Everything under /out together: the size of the run's own tmpfs (sandbox/outfs.py,
    # plus a little slack), hidden files included; the run is killed beyond either.
    # predictions.npy for 14,500 x 15 float64 scores is 1.7 MB; the rest is headroom.
    out_max_bytes: int = 256 << 20
    out_max_files: int = 1000


@dataclass(frozen=True)
class Mount:
    host: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RunSpec:
    # Deterministic, e.g. "katakana-sub-42-a1": a retry never runs beside a live attempt.
    name: str
    image: str
    command: Sequence[str]
    workdir: str
    mounts: Sequence[Mount]
    # Where the run's outputs are left on the host: /out itself is a capped tmpfs the
    # backend mounts for the run and copies into this directory afterwards.
    out_dir: Path
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    # GPU UUID (or index) for one device, None for CPU-only runs.
    gpu: str | None = None


@dataclass
class RunResult:
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    wall_seconds: float
    backend: str
    image: str
    image_digest: str
    # The run wrote more than Limits.out_max_bytes/out_max_files under /out and was killed;
    # what it wrote is discarded. Backends without the check leave it False.
    output_exceeded: bool = False


class SandboxBackend(Protocol):
    name: str
    # The interpreter that runs the harness inside the sandbox.
    python: str

    def run(self, spec: RunSpec) -> RunResult:
        """Run to completion (or the wall limit), destroy the sandbox, then return."""
        ...

    def kill(self, name: str) -> None:
        """Kill and remove the sandbox called ``name`` if it exists; idempotent."""
        ...

    def reap(self, *, older_than_seconds: float) -> list[str]:
        """Kill this deployment's sandboxes older than the given age; return their names.

        Only sandboxes this backend's deployment (its ``deployment``, the run prefix)
        started: never another deployment's or another test run's on a shared host."""
        ...

    def list_runs(self) -> list[str]:
        """The names of this deployment's sandboxes that exist now (running or not).

        What a reaper compares with the runs that should be alive; never another
        deployment's."""
        ...

    def why_killed(self, name: str, *, since: float) -> str | None:
        """Why the run ``name`` was killed from outside since ``since`` (epoch seconds),
        or None when nothing outside it did (its own crash is the learner's).

        An operator's ``docker kill`` or an engine restart ends a run the way learner
        code that killed itself does; only the engine can tell them apart. Backends that
        cannot be killed from outside return None. Raises ``InfrastructureError`` when
        the engine cannot be asked."""
        ...

    def image_digest(self, image: str) -> str: ...
