"""The warm pool's parts: what a container is started with (``Profile``), one ready
container (``Slot``) and the pool that keeps a few of them per profile (``WarmPool``).

How a job is handed to a slot, and everything Docker-specific, is ``sandbox/warm.py``'s;
the pool only asks its backend to start and destroy slots (``SlotBackend``), so its
threading (a keeper that refills, single-use hand-out, expiry) reads on its own.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sandbox.base import CappedStream, Limits, RunSpec
from sandbox.outfs import OutFs, release_under

log = logging.getLogger(__name__)

# A pool's own directory in the temp dir: "<prefix><pid>-<random>" (see release_dead_roots).
WARM_ROOT_PREFIX = "katakana-warm-"
READY_MARKER = b"[harness] warm: ready"
# Kept of a warm container's own output before its job (diagnostics of a failed start).
PRE_JOB_CAP_BYTES = 64 << 10


class SlotBackend(Protocol):
    """What the pool needs from its backend (``WarmDockerBackend``)."""

    idle_max_seconds: float

    def start_slot(self, profile: Profile) -> Slot: ...

    def destroy(self, slot: Slot) -> None: ...

    def may_refill(self, profile: Profile) -> bool: ...


@dataclass(frozen=True)
class Profile:
    """What a container is created with; a job runs warm only in a matching container."""

    image: str
    limits: Limits
    env: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    gpu: str | None
    workdir: str

    @classmethod
    def of(cls, spec: RunSpec) -> Profile:
        # Only what is fixed at creation: the wall limit and stream caps are the host's
        # business and may differ from job to job; /out's caps size the slot's tmpfs.
        limits = dataclasses.replace(spec.limits, wall_seconds=0.0, stream_cap_bytes=0)
        return cls(
            image=spec.image,
            limits=limits,
            env=tuple(sorted(spec.env.items())),
            labels=tuple(sorted(spec.labels.items())),
            gpu=spec.gpu,
            workdir=spec.workdir,
        )


@dataclass(frozen=True)
class WarmPlan:
    """How a spec maps onto a slot: its submission folder, test data and job argv."""

    profile: Profile
    submission: Path
    data: Path | None
    argv: list[str]


class JobStreams:
    """Stream sinks that start a fresh capture when the job begins."""

    def __init__(self) -> None:
        self.out = CappedStream(PRE_JOB_CAP_BYTES)
        self.err = CappedStream(PRE_JOB_CAP_BYTES)
        self.ready = threading.Event()
        self._in_job = False

    def feed_out(self, chunk: bytes) -> None:
        self.out.feed(chunk)

    def feed_err(self, chunk: bytes) -> None:
        self.err.feed(chunk)
        if not self._in_job and READY_MARKER in self.err.value():
            self.ready.set()

    def begin_job(self, cap: int) -> None:
        self._in_job = True
        self.out, self.err = CappedStream(cap), CappedStream(cap)


@dataclass
class Slot:
    root: Path
    name: str
    token: str
    container: Any
    sink: JobStreams
    reader: threading.Thread
    digest: str
    # The capped tmpfs mounted on ``root / "out"`` (sandbox/outfs.py).
    outfs: OutFs | None = None
    created: float = field(default_factory=time.monotonic)

    @property
    def out_dir(self) -> Path:
        return self.root / "out"

    def alive(self) -> bool:
        # The attach stream closes when the container dies (reaped, OOM while idle...).
        return self.sink.ready.is_set() and self.reader.is_alive()


class WarmPool:
    """Keeps ``size`` ready containers of one profile; a keeper thread refills it."""

    def __init__(self, backend: SlotBackend, profile: Profile, size: int) -> None:
        self.backend = backend
        self.profile = profile
        self.size = size
        self._ready: list[Slot] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._changed = threading.Condition(self._lock)
        self.failures = 0
        self._keeper = threading.Thread(target=self._keep, name="warm-pool", daemon=True)
        self._keeper.start()

    def take(self) -> Slot | None:
        """A ready container for one job, or None (the caller runs cold)."""
        found, dead = None, []
        with self._lock:
            while self._ready and found is None:
                slot = self._ready.pop(0)
                if slot.alive() and not self._expired(slot):
                    found = slot
                else:
                    dead.append(slot)
        self._wake.set()  # the keeper refills at once
        for slot in dead:
            self.backend.destroy(slot)
        return found

    def poke(self) -> None:
        self._wake.set()

    def wait_ready(self, count: int, timeout: float) -> bool:
        """Block until ``count`` containers are ready (benchmarks and tests)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._ready) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._keeper.join(timeout=120)
        with self._lock:
            slots, self._ready = self._ready, []
        for slot in slots:
            self.backend.destroy(slot)

    def _expired(self, slot: Slot) -> bool:
        return time.monotonic() - slot.created > self.backend.idle_max_seconds

    def _keep(self) -> None:
        while not self._stop.is_set():
            if not self.backend.may_refill(self.profile):
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            with self._lock:
                expired = [s for s in self._ready if self._expired(s) or not s.alive()]
                self._ready = [s for s in self._ready if s not in expired]
                missing = self.size - len(self._ready)
            for slot in expired:
                self.backend.destroy(slot)
            if missing > 0 and not self._stop.is_set():
                self._add_one()
                continue
            self._wake.wait(1.0)
            self._wake.clear()

    def _add_one(self) -> None:
        try:
            slot = self.backend.start_slot(self.profile)
        except Exception as exc:  # noqa: BLE001 - the keeper must survive engine trouble
            self.failures += 1
            log.warning("warm pool: starting a container failed: %s", exc)
            self._stop.wait(min(30.0, 2.0**self.failures))
            return
        self.failures = 0
        with self._changed:
            if self._stop.is_set():
                self.backend.destroy(slot)
                return
            self._ready.append(slot)
            self._changed.notify_all()


def release_dead_roots(tmp: Path | None = None) -> list[Path]:
    """Unmount and delete the slot directories of warm pools whose process is gone.

    A worker killed with ``kill -9`` leaves its pool's directory (and the slots' /out
    tmpfs mounts) behind; its containers go to the reaper. Only directories named after a
    pid that no longer runs are touched, so a live pool (of any deployment) is never.
    """
    removed = []
    base = Path(tmp or tempfile.gettempdir())
    for root in base.glob(f"{WARM_ROOT_PREFIX}*"):
        pid = root.name[len(WARM_ROOT_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _pid_alive(int(pid)) or not root.is_dir():
            continue
        release_under(root)
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
