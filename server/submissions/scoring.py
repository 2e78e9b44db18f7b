"""The worker side of a submission: claim it, run the scorer, record the outcome.

Runs outside any transaction (the sandbox can take minutes); each database write is a
short transaction in ``lifecycle``, retried through a database outage (a PostgreSQL
restart must not turn a finished run into a rerun). A heartbeat thread renews the lease
while the sandbox runs, so the sweeper can tell a live run from one whose worker died;
when the heartbeat finds the run given away, it kills the sandbox at once. Before
claiming anything the worker checks its own sandbox engine: a worker whose Docker is
down never takes a submission (``WorkerUnhealthy``), it hands the message back.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from sandbox.base import InfrastructureError, Limits, SandboxBackend
from sandbox.gpu import gpu_health
from scorer.pipeline import ScoreConfig, ScoreOutcome, score_zip
from server.ops import liveness
from server.ops.signals import CLAIMED_SUBMISSION
from server.submissions import intake, lifecycle, runs
from server.submissions.models import Status, Submission

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a worker keeps retrying one database write before it gives up (the task then
# fails, the lease expires and the sweeper takes over). Far below the soft time limit.
DB_RETRY_SECONDS = 120.0


class WorkerUnhealthy(Exception):
    """This worker cannot run anything now (its sandbox engine is unreachable)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{threading.get_native_id()}"


def score_config(submission: Submission, backend: SandboxBackend) -> ScoreConfig:
    course = submission.course
    limits = Limits(
        wall_seconds=float(course.effective_wall_seconds),
        memory_mb=course.effective_memory_mb,
        cpus=settings.KATAKANA_SANDBOX_CPUS,
        pids=settings.KATAKANA_SANDBOX_PIDS,
    )
    return ScoreConfig(
        backend=backend,
        image=settings.KATAKANA_SANDBOX_IMAGE,
        work_root=settings.KATAKANA_RUNS_DIR,
        limits=limits,
        archive_limits=intake.archive_limits(),
        legacy_allowed=course.legacy_allowed,
        # When the label stand-in cannot follow a legacy notebook: refuse it (the default)
        # or, where the course opted in, run it with the labels as a self-reported score.
        legacy_labelled_allowed=course.legacy_labelled_allowed,
        gpu=settings.KATAKANA_GPUS[0] if settings.KATAKANA_GPUS else None,
        python=backend.python,
        # Where the daemon finds the harness (a containerised worker publishes it).
        harness_dir=Path(settings.KATAKANA_HARNESS_DIR),
    )


def with_db_retry(write: Callable[[], T], *, what: str) -> T:
    """Run one short database write, reconnecting through an outage of PostgreSQL.

    Every write retried here is conditional on the attempt, so running it twice (the
    first COMMIT may have landed before the connection died) changes nothing twice.
    """
    deadline = time.monotonic() + DB_RETRY_SECONDS
    pause = 0.5
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("%s: database unavailable (%s); retrying in %.1f s", what, exc, pause)
            connection.close()
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


class _Heartbeat(threading.Thread):
    """Renews the lease every third of it; on losing the run, kills the sandbox."""

    def __init__(self, submission: Submission, on_lost: Callable[[], None]) -> None:
        super().__init__(name=f"heartbeat-{submission.pk}", daemon=True)
        self.submission = submission
        self.on_lost = on_lost
        self.stop = threading.Event()
        self.lost = False

    def run(self) -> None:
        interval = max(0.5, settings.KATAKANA_LEASE_SECONDS / 3)
        try:
            while not self.stop.wait(interval):
                try:
                    owned = lifecycle.submission_heartbeat(self.submission)
                except (OperationalError, InterfaceError):
                    # PostgreSQL restarting: try again next beat on a fresh connection; the
                    # lease is three beats long.
                    log.warning("submission %s: heartbeat failed", self.submission.pk)
                    connection.close()
                    continue
                if not owned:
                    self.lost = True
                    log.warning(
                        "submission %s: lease lost; killing the sandbox", self.submission.pk
                    )
                    self.on_lost()
                    return
        finally:
            connection.close()


def check_worker_health(backend: SandboxBackend) -> None:
    """Raise ``WorkerUnhealthy`` if this worker's sandbox engine cannot run anything."""
    try:
        backend.image_digest(settings.KATAKANA_SANDBOX_IMAGE)
    except InfrastructureError as exc:
        raise WorkerUnhealthy(str(exc)) from exc


def run_scoring(hint_id: int, *, worker: str | None = None) -> str:
    """Score the fairest queued submission if this worker wins a claim; say what happened.

    Returns "scored" / "failed" (a verdict), "queued" / "error" (an infrastructure fault,
    retried or final), "superseded" (the result came too late: the run was given to
    another worker), "running" (an infrastructure fault on a run no longer ours) or
    "not-claimed" (nothing to claim: a duplicate or spare message).
    """
    CLAIMED_SUBMISSION.set(None)
    close_old_connections()
    try:
        backend = runs.sandbox_backend()
        check_worker_health(backend)
    except InfrastructureError as exc:
        raise WorkerUnhealthy(str(exc)) from exc
    liveness.mark("sandbox")
    runs.reap_orphans(backend)  # this host's leftovers, whichever worker made them
    submission = with_db_retry(
        lambda: lifecycle.submission_claim(hint_id, worker=worker or worker_name()),
        what="claim",
    )
    if submission is None:
        return "not-claimed"
    # The fair claim may pick another row than the message named: say which one we ran.
    CLAIMED_SUBMISSION.set(submission.pk)
    name = runs.run_name(submission)
    # Kill whatever an earlier attempt of this submission may have left running here.
    for attempt in range(1, submission.attempts):
        _kill_quietly(backend, runs.run_name(submission, attempt))
    heartbeat = _Heartbeat(submission, on_lost=lambda: _kill_quietly(backend, name))
    heartbeat.start()
    started = time.time()
    try:
        outcome = _score(submission, backend, name)
        fault = _killed_through_engine(backend, outcome, name, started)
    except Exception as exc:
        # Anything but a verdict is our fault (engine down, file missing, soft time limit,
        # a bug): retry within the attempt cap, never charge the learner.
        log.exception("submission %s: infrastructure failure", submission.pk)
        outcome, fault = None, f"{type(exc).__name__}: {exc}"
    finally:
        heartbeat.stop.set()
        heartbeat.join(timeout=5)
    close_old_connections()
    if outcome is None or fault:
        _kill_quietly(backend, name)
        status = with_db_retry(
            lambda: lifecycle.submission_record_infrastructure_failure(submission, fault or ""),
            what="record failure",
        )
        return str(status.value if isinstance(status, Status) else status)
    recorded = with_db_retry(
        lambda: lifecycle.submission_record_outcome(submission, outcome), what="record outcome"
    )
    return outcome.status if recorded else "superseded"


def _score(submission: Submission, backend: SandboxBackend, name: str) -> ScoreOutcome:
    testset = submission.testset or submission.course.active_testset
    if testset is None:
        raise InfrastructureError("the course has no active test set")
    with tempfile.TemporaryDirectory(prefix="katakana-zip-") as tmp:
        zip_path = lifecycle.copy_archive_to(submission, Path(tmp) / "submission.zip")
        config = score_config(submission, backend)
        if config.gpu is not None:
            # A broken GPU is an infrastructure failure (retried), never the learner's.
            gpu_health(config.gpu)

        def on_phase(phase: str) -> None:
            with_db_retry(
                lambda: lifecycle.submission_heartbeat(submission, phase=phase), what="phase"
            )

        config = dataclasses.replace(config, on_phase=on_phase)
        return score_zip(zip_path, testset.path, run_name=name, config=config)


def _kill_quietly(backend: SandboxBackend, name: str) -> None:
    try:
        backend.kill(name)
    except Exception:  # the reaper is the backstop; never mask the real outcome
        log.warning("could not kill sandbox %s", name, exc_info=True)


def _killed_through_engine(
    backend: SandboxBackend, outcome: ScoreOutcome, name: str, since: float
) -> str | None:
    """Why a "crashed" verdict is really ours, or None when it is the learner's.

    A sandbox killed from outside (an operator's ``docker kill``, a daemon restarting)
    exits like learner code that killed itself: status 137 and no result.json. Only the
    backend can tell them apart (``SandboxBackend.why_killed``). Our own kills (wall
    limit) are reported as timeouts, not crashes.
    """
    if outcome.error is None or outcome.error.code != "crashed":
        return None
    try:
        return backend.why_killed(name, since=since)
    except InfrastructureError as exc:  # engine unreachable: it went away under the run
        return f"the sandbox crashed and the engine cannot be asked why: {exc}"
