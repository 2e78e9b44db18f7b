"""The periodic sweeper: no submission and no email is ever stranded.

Celery is at-least-once at best; the database is the truth. Every KATAKANA_SWEEP_SECONDS
the sweeper (beat task ``submissions.sweep``):

1. reclaims RUNNING submissions whose lease expired (their worker died or hangs): back to
   QUEUED while attempts remain, else ERROR, refunded;
2. tops the scoring queue up: a scoring message is a fungible wake-up call, so when
   fewer messages wait in the broker than claimable QUEUED submissions (Redis restarted
   without its data, a publish lost while Redis was down), it publishes the difference;
3. re-sends emails whose send task was lost or whose retries stopped early;
4. reaps orphan sandboxes: ours (by name prefix) whose attempt is no longer the live one,
   with their run directories (and /out mounts) and dead warm pools' directories;
5. removes what killed processes left on this host's disk (``server/ops/leftovers.py``).

Each step is independent (Redis down must not stop the reclaiming). Duplicates it may
cause are harmless: a task only acts after winning a conditional claim.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from sandbox.base import RUN_LABEL, SandboxBackend
from sandbox.outfs import release_under
from sandbox.warm import release_dead_roots
from server.ops.leftovers import remove_leftovers_now_and_then
from server.submissions import routing
from server.submissions.models import OutboxEmail, Status, Submission

log = logging.getLogger(__name__)
T = TypeVar("T")

# Run directories of dead attempts are removed once this old (seconds).
RUN_DIR_GRACE_SECONDS = 60.0


@dataclass
class SweepReport:
    reclaimed: int = 0
    abandoned: int = 0
    requeued: int = 0
    emails: int = 0
    reaped: int = 0
    leftovers: int = 0


def sweep(*, now: dt.datetime | None = None, reap: bool = True) -> SweepReport:
    now = now or timezone.now()
    report = SweepReport()
    reclaimed = _guarded("reclaim", lambda: _reclaim_expired_leases(now), (0, 0))
    report.reclaimed, report.abandoned = reclaimed
    report.requeued = _guarded("top up", lambda: _top_up_messages(now), 0)
    report.emails = _guarded("emails", lambda: _resend_unsent_emails(now), 0)
    if reap:
        report.reaped = reap_orphans()
    report.leftovers = _guarded("leftovers", remove_leftovers_now_and_then, 0)
    if any(vars(report).values()):
        log.info("sweep: %s", report)
    return report


def _guarded(step: str, action: Callable[[], T], fallback: T) -> T:
    try:
        return action()
    except Exception:  # the sweeper must keep sweeping whatever one step hits
        log.exception("sweep: %s failed", step)
        return fallback


def _reclaim_expired_leases(now: dt.datetime) -> tuple[int, int]:
    from server.submissions.services import submission_record_infrastructure_failure

    reclaimed = abandoned = 0
    expired = Submission.objects.filter(status=Status.RUNNING, lease_until__lt=now)
    for submission in expired:
        result = submission_record_infrastructure_failure(
            submission, f"lease expired on worker {submission.worker!r} (worker lost or hung)"
        )
        if result == Status.QUEUED:
            reclaimed += 1
        elif result == Status.ERROR:
            abandoned += 1
    return reclaimed, abandoned


def waiting_messages(queue: str | None = None) -> int:
    """Scoring messages waiting in the broker's queue (not those held by a worker)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
    try:
        return int(client.llen(queue or settings.KATAKANA_SCORE_QUEUE))
    finally:
        client.close()


def _top_up_messages(now: dt.datetime) -> int:
    from server.submissions.services import claimable_queued, publish_score_message

    # The grace covers a publish that is still on its way after its commit.
    cutoff = now - dt.timedelta(seconds=settings.KATAKANA_REQUEUE_GRACE_SECONDS)
    published = 0
    # Per scoring queue (one, or a CPU and a GPU queue: routing.py), for its kinds only.
    for queue, kinds in routing.score_queues().items():
        claimable = claimable_queued(now).filter(enqueued_at__lt=cutoff, worker_kind__in=kinds)
        needed = claimable.count()
        missing = needed - waiting_messages(queue) if needed else 0
        if missing <= 0:
            continue
        rows = claimable.order_by("enqueued_at", "pk").values_list("pk", "worker_kind")
        for pk, kind in rows[:missing]:
            publish_score_message(pk, kind=kind)
            published += 1
    return published


def _resend_unsent_emails(now: dt.datetime) -> int:
    from server.submissions.tasks import send_outbox_email

    grace = dt.timedelta(seconds=settings.KATAKANA_REQUEUE_GRACE_SECONDS)
    # A failed send holds its claim until its retry is due; past that plus the grace, the
    # retry message was lost. Rows at the attempt ceiling are left to the operator.
    pending = (
        OutboxEmail.objects.still_tried()
        .filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now - grace),
            created_at__lt=now - grace,
        )
        .values_list("pk", flat=True)
    )
    count = 0
    for pk in pending:
        send_outbox_email.delay(pk)
        count += 1
    return count


# ---------------------------------------------------------------------------
# Orphan sandboxes


def reap_orphans(backend: SandboxBackend | None = None) -> int:
    """Kill this host's sandboxes (and scratch directories) of attempts no longer live.

    Runs from the sweeper and at the start of every scoring task, so every GPU host
    cleans up after its own dead workers, not only the host running beat. Never raises.
    """
    from server.submissions.scoring import parse_run_name, sandbox_backend

    reaped = 0
    try:
        backend = backend or sandbox_backend()
        if backend.name in ("docker", "docker-warm"):
            reaped += _reap_docker(backend, parse_run_name)
        if backend.name != "docker":
            # The warm pool's idle containers do not parse as runs: its own reaper ages them.
            grace = settings.KATAKANA_WALL_SECONDS + 60
            reaped += len(backend.reap(older_than_seconds=grace))
    except Exception:
        log.exception("reaping sandboxes failed")
    try:
        _remove_dead_run_dirs(parse_run_name)
        release_dead_roots()  # warm pools of killed workers: their /out mounts and dirs
    except Exception:
        log.exception("removing old run directories failed")
    return reaped


def live_attempts(ids: set[int]) -> set[tuple[int, int]]:
    """(id, attempt) of the runs that still own their submission (lease not expired)."""
    rows = Submission.objects.filter(
        pk__in=ids, status=Status.RUNNING, lease_until__gt=timezone.now()
    ).values_list("pk", "attempts")
    return {(pk, attempts) for pk, attempts in rows}


def _reap_docker(backend: SandboxBackend, parse: Callable[[str], tuple[int, int] | None]) -> int:
    import docker

    client = docker.from_env(timeout=30)
    try:
        containers = client.containers.list(all=True, sparse=True, filters={"label": RUN_LABEL})
        ours: dict[str, tuple[int, int]] = {}
        for container in containers:
            for raw in container.attrs.get("Names") or []:
                parsed = parse(raw.lstrip("/"))
                if parsed:
                    ours[raw.lstrip("/")] = parsed
    finally:
        client.close()
    # Listed before the database is read: a container in the list belongs to an attempt
    # that was already claimed, so "not live" really means dead, never "not yet".
    live = live_attempts({pk for pk, _ in ours.values()})
    dead = [name for name, attempt in ours.items() if attempt not in live]
    for name in dead:
        backend.kill(name)
    return len(dead)


def _remove_dead_run_dirs(parse: Callable[[str], tuple[int, int] | None]) -> None:
    # score_zip makes "<run name>-<random>" under KATAKANA_RUNS_DIR and removes it in a
    # finally; a killed worker leaves it behind (a disk-full risk, anchors-sandbox §3d).
    root = Path(settings.KATAKANA_RUNS_DIR)
    if not root.is_dir():
        return
    found: dict[Path, tuple[int, int]] = {}
    for path in root.iterdir():
        parsed = parse(path.name.rsplit("-", 1)[0])
        if parsed and path.is_dir() and time.time() - path.stat().st_mtime > RUN_DIR_GRACE_SECONDS:
            found[path] = parsed
    if not found:
        return
    live = live_attempts({pk for pk, _ in found.values()})
    for path, attempt in found.items():
        if attempt not in live:
            release_under(path)  # its /out tmpfs first: rmtree must not reach into a mount
            shutil.rmtree(path, ignore_errors=True)
