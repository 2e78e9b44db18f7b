"""Warm Docker sandboxes: containers started ahead of time, each used for one job only.

A cold run pays, inside the learner's wall clock, for container creation and for
importing numpy, IPython and torch. ``WarmDockerBackend`` keeps a small pool of
containers per profile (image, limits, env, GPU) that are already running the harness
in wait mode (``harness.py --wait``) with those frameworks imported. A job is given to
exactly one of them and the container is destroyed afterwards: nothing is reused or
shared across learners (anchors-sandbox.md §4a: warm reuse is what our threat model
forbids; warm *pre-start* is not reuse).

Per slot the pool creates host directories, bound into the container exactly as a cold
run binds the pipeline's ones, with the same hardened profile (``DockerBackend``):

    <slot>/submission → the spec's workdir (read-only), filled when the job comes
    <slot>/data       → /work/1_data (read-only), gets test_data.npy when the job comes
    <slot>/control    → /control (read-only): the host writes job.json, which starts it
    <slot>/out        → /out (read-write): a tmpfs sized by the output caps (outfs), its
                        contents copied to the spec's out_dir afterwards

Only specs the pool understands go warm: a ``python3 SCRIPT ARGS`` command whose mounts
are the submission folder, ``/work/1_data/test_data.npy`` and this harness. Anything
else, in particular the legacy contract, which mounts the labels, runs cold: labels are
never in a warm container. The wall limit counts from the moment the job file is written.

Trade-offs accepted: a warm container's memory already holds the preloaded frameworks,
charged to the job's memory limit (as a cold run's own imports would be); idle containers
are replaced after ``idle_max_seconds`` so that the reaper, which ages containers from
their creation, never kills a live warm run (``WARM_LABEL``). Refilling costs a few CPU
seconds (importing torch): on a host without spare cores it would slow the running job,
whose wall clock is the learner's, so by default the pool refills during a job only when
the host has at least twice the job's CPUs plus two (``refill_while_busy``); otherwise it
refills between jobs, and under a steady backlog some jobs run cold.

The pool itself (profiles, slots, the keeper thread) is ``sandbox/warm_pool.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sandbox.base import DEFAULT_DEPLOYMENT, InfrastructureError, Mount, RunResult, RunSpec
from sandbox.docker_backend import (
    STREAM_JOIN_SECONDS,
    WARM_LABEL,
    DockerBackend,
    collect_result,
    supervise,
)
from sandbox.hostside import finish_outputs, prepare_host_paths
from sandbox.outfs import OutFs, release_under
from sandbox.warm_pool import WARM_ROOT_PREFIX, JobStreams, Profile, Slot, WarmPlan, WarmPool

log = logging.getLogger(__name__)

HARNESS_DIR = Path(__file__).resolve().parent / "runner"
HARNESS_TARGET = "/harness"
CONTROL_TARGET = "/control"
DATA_TARGET = "/work/1_data"
DATA_FILE = "test_data.npy"
DEFAULT_PRELOAD = ("numpy", "IPython.core.interactiveshell", "torch")
# The pipeline names what a run's zip imports in this variable of the run's environment
# (scorer/frameworks.py); the environment is part of the profile, so each kind (numpy
# only, torch, Keras) gets its own pool of containers that preloaded just that. The
# contract is part of the profile too (its label), so a worker serving every kind sees
# four profiles in practice (verified numpy, torch and Keras, legacy numpy): the default
# keeps four pools rather than evicting one whose containers it needs again a job later.
# Idle, with two containers per pool, that is about 1.8 GB (peak RSS after the preload,
# measured in the image: 30 MB numpy + IPython, 220 MB with torch, 620 MB with Keras).
PRELOAD_ENV = "KATAKANA_PRELOAD"


class WarmDockerBackend:
    """``SandboxBackend`` that runs jobs in pre-started, single-use Docker containers."""

    name = "docker-warm"
    python = "python3"

    def __init__(
        self,
        pool_size: int = 2,
        *,
        preload: tuple[str, ...] = DEFAULT_PRELOAD,
        idle_max_seconds: float = 120.0,
        ready_timeout_seconds: float = 120.0,
        work_root: Path | None = None,
        harness_dir: Path = HARNESS_DIR,
        max_profiles: int = 4,
        refill_while_busy: bool | None = None,
        cold: DockerBackend | None = None,
        on_started: Callable[[dict[str, Any]], None] | None = None,
        deployment: str = DEFAULT_DEPLOYMENT,
    ) -> None:
        self.pool_size = pool_size
        self.preload = preload
        self.idle_max_seconds = idle_max_seconds
        self.ready_timeout_seconds = ready_timeout_seconds
        self.harness_dir = harness_dir.resolve()
        self.max_profiles = max_profiles
        self.refill_while_busy = refill_while_busy
        self._busy = 0
        # The cold backend labels and reaps by deployment; warm containers are its too.
        self.cold = cold or DockerBackend(deployment=deployment)
        self._client = self.cold._client
        self._on_started = on_started
        self._work_root = work_root
        self._pools: dict[Profile, WarmPool] = {}
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    # ------------------------------------------------------------------ SandboxBackend

    def run(self, spec: RunSpec) -> RunResult:
        plan = self.plan(spec)
        if plan is None:
            return self.cold.run(spec)
        pool = self.pool_for(plan.profile)
        slot = pool.take()
        with self._lock:
            self._busy += 1
        try:
            if slot is None:
                return self.cold.run(spec)
            return self._run_in_slot(slot, spec, plan)
        finally:
            if slot is not None:
                self.destroy(slot)
            with self._lock:
                self._busy -= 1
            for each in list(self._pools.values()):
                each.poke()

    def may_refill(self, profile: Profile) -> bool:
        """Whether a pool may start a container now (see the module's trade-offs)."""
        if self._busy == 0:
            return True
        if self.refill_while_busy is not None:
            return self.refill_while_busy
        return (os.cpu_count() or 1) >= 2 * profile.limits.cpus + 2

    def kill(self, name: str) -> None:
        # A warm container is renamed to the spec's name when its job starts.
        self.cold.kill(name)

    def reap(self, *, older_than_seconds: float) -> list[str]:
        return self.cold.reap(older_than_seconds=older_than_seconds)

    def list_runs(self) -> list[str]:
        return self.cold.list_runs()

    def why_killed(self, name: str, *, since: float) -> str | None:
        return self.cold.why_killed(name, since=since)

    def image_digest(self, image: str) -> str:
        return self.cold.image_digest(image)

    # ------------------------------------------------------------------ pools

    def plan(self, spec: RunSpec) -> WarmPlan | None:
        """How ``spec`` would run warm, or None when it must run cold."""
        command = list(spec.command)
        if len(command) < 2 or Path(command[0]).name not in ("python", "python3"):
            return None
        if command[1].startswith("-"):  # interpreter options are fixed at container start
            return None
        submission: Path | None = None
        data: Path | None = None
        for mount in spec.mounts:
            host = Path(mount.host)
            if mount.target == spec.workdir and mount.read_only and host.is_dir():
                submission = host
            elif mount.target == f"{DATA_TARGET}/{DATA_FILE}" and mount.read_only:
                data = host
            elif mount.target == HARNESS_TARGET and host.resolve() == self.harness_dir:
                continue
            else:
                # Labels (legacy contract) or anything unforeseen: never in a warm container.
                return None
        if submission is None:
            return None
        return WarmPlan(Profile.of(spec), submission, data, command[1:])

    def pool_for(self, profile: Profile) -> WarmPool:
        with self._lock:
            if self._closed:
                raise InfrastructureError("warm backend is closed")
            pool = self._pools.pop(profile, None)
            if pool is None:
                pool = WarmPool(self, profile, self.pool_size)
                while len(self._pools) >= self.max_profiles:
                    oldest = next(iter(self._pools))
                    self._pools.pop(oldest).close()
            self._pools[profile] = pool  # most recently used last
            return pool

    def prewarm(self, spec: RunSpec, *, count: int | None = None, timeout: float = 180.0) -> bool:
        """Fill the pool for ``spec``'s profile and wait for it; False if ``spec`` runs cold."""
        plan = self.plan(spec)
        if plan is None:
            return False
        wanted = self.pool_size if count is None else count
        return self.pool_for(plan.profile).wait_ready(wanted, timeout)

    def wait_until_full(self, timeout: float = 180.0) -> bool:
        """Wait until every pool holds ``pool_size`` ready containers (benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            pools = list(self._pools.values())
        return all(p.wait_ready(p.size, max(0.0, deadline - time.monotonic())) for p in pools)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        if self._work_root is None and hasattr(self, "_own_root"):
            release_under(self._own_root)
            shutil.rmtree(self._own_root, ignore_errors=True)

    # ------------------------------------------------------------------ slots

    def _slots_root(self) -> Path:
        if self._work_root is not None:
            self._work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
            return self._work_root
        if not hasattr(self, "_own_root"):
            # Root-owned 0700 parent: the 0777 out dirs below are reachable by no one else.
            # The pid in the name lets the sweeper release a killed worker's leftovers.
            self._own_root = Path(tempfile.mkdtemp(prefix=f"{WARM_ROOT_PREFIX}{os.getpid()}-"))
        return self._own_root

    def start_slot(self, profile: Profile) -> Slot:
        """Create and start one container of ``profile``; return once it is ready."""
        token = secrets.token_hex(8)
        root = Path(tempfile.mkdtemp(prefix="slot-", dir=self._slots_root()))
        for sub in ("submission", "data", "control", "out"):
            (root / sub).mkdir()
        spec = self._container_spec(profile, root, token)
        container = None
        try:
            # /out's kernel cap is fixed when the container is created, like its memory.
            outfs = OutFs.mount(spec.out_dir, profile.limits)
            prepare_host_paths(spec)
            digest = self.cold.image_digest(profile.image)
            kwargs = self.cold._create_kwargs(spec)
            kwargs["labels"][WARM_LABEL] = str(int(self.idle_max_seconds))
            sink = JobStreams()
            container = self._client.containers.create(**kwargs)
            reader = self.cold.attach(container, sink.feed_out, sink.feed_err)
            slot = Slot(root, spec.name, token, container, sink, reader, digest, outfs)
            container.start()
            if not sink.ready.wait(self.ready_timeout_seconds) or not reader.is_alive():
                detail = sink.err.value()[-2000:].decode("utf-8", "replace")
                raise InfrastructureError(f"warm container did not get ready: {detail}")
            return slot
        except Exception:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
            release_under(root)
            shutil.rmtree(root, ignore_errors=True)
            raise

    def _container_spec(self, profile: Profile, root: Path, token: str) -> RunSpec:
        command = [
            "python3",
            f"{HARNESS_TARGET}/harness.py",
            "--wait",
            CONTROL_TARGET,
            "--preload",
            dict(profile.env).get(PRELOAD_ENV) or ",".join(self.preload),
            # A random token in argv: survivors of this container can be found on the host.
            "--slot",
            token,
        ]
        return RunSpec(
            name=f"{self.cold.deployment}-warm-{token}",
            image=profile.image,
            command=command,
            workdir=profile.workdir,
            mounts=[
                Mount(root / "submission", profile.workdir),
                Mount(root / "data", DATA_TARGET),
                Mount(self.harness_dir, HARNESS_TARGET),
                Mount(root / "control", CONTROL_TARGET),
            ],
            out_dir=root / "out",
            limits=profile.limits,
            env=dict(profile.env),
            labels=dict(profile.labels),
            gpu=profile.gpu,
        )

    def destroy(self, slot: Slot) -> None:
        """Kill and remove the container and delete its host directories."""
        with contextlib.suppress(InfrastructureError):
            self.cold._remove(slot.container)
        if slot.outfs is not None:
            slot.outfs.release()  # before the rmtree, which must not descend into a mount
        shutil.rmtree(slot.root, ignore_errors=True)

    def _run_in_slot(self, slot: Slot, spec: RunSpec, plan: WarmPlan) -> RunResult:
        spec.out_dir.mkdir(parents=True, exist_ok=True)
        _link_tree(plan.submission, slot.root / "submission")
        if plan.data is not None:
            _link_or_copy(plan.data, slot.root / "data" / DATA_FILE)
        _make_readable(slot.root / "submission")
        _make_readable(slot.root / "data")
        # The job carries the spec's name from now on: kill(spec.name) finds it, and a
        # leftover of an earlier attempt with that name never runs beside it.
        self.cold.kill(spec.name)
        try:
            slot.container.rename(spec.name)
        except Exception as exc:  # noqa: BLE001 - the engine's fault, never the learner's
            raise InfrastructureError(f"docker rename failed: {exc}") from exc
        slot.sink.begin_job(spec.limits.stream_cap_bytes)
        _write_job(slot.root / "control", {"argv": plan.argv, "cwd": spec.workdir})
        started = time.monotonic()
        if self._on_started is not None:
            slot.container.reload()
            self._on_started(slot.container.attrs)
        ended = supervise(slot.container, spec, slot.out_dir, started, slot.outfs)
        slot.reader.join(STREAM_JOIN_SECONDS)
        result = collect_result(
            slot.container, spec, ended, slot.sink.out, slot.sink.err, self.name, slot.digest
        )
        self.cold._remove(slot.container)  # dead before its outputs are copied
        if slot.outfs is not None:
            finish_outputs(result, slot.outfs, spec)
        return result


# ---------------------------------------------------------------------- host files


def _write_job(control: Path, job: dict[str, Any]) -> None:
    tmp = control / ".job.tmp"
    tmp.write_text(json.dumps(job), encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, control / "job.json")  # appears whole, never half-written


def _link_or_copy(src: Path, dst: Path) -> None:
    # A hard link is free and safe here: the mount is read-only inside the sandbox.
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _link_tree(src: Path, dst: Path) -> None:
    """Fill the existing ``dst`` with ``src``'s tree (links kept as links, never followed)."""
    for entry in os.scandir(src):
        target = dst / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            target.mkdir()
            _link_tree(Path(entry.path), target)
        elif entry.is_file(follow_symlinks=False):
            _link_or_copy(Path(entry.path), target)


def _make_readable(root: Path) -> None:
    for path in _walk(root):
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode):
            os.chmod(path, stat.S_IMODE(info.st_mode) | 0o755)
        elif stat.S_ISREG(info.st_mode):
            os.chmod(path, stat.S_IMODE(info.st_mode) | 0o444)


def _walk(root: Path) -> Iterator[Path]:
    yield root
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            yield Path(dirpath) / name
