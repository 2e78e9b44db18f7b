"""The periodic sweeper: no submission and no email is ever stranded.

Celery is at-least-once at best; the database is the truth. Every KATAKANA_SWEEP_SECONDS
the sweeper (beat task ``submissions.sweep``):

1. reclaims RUNNING submissions whose lease expired (their worker died or hangs): back to
   QUEUED while attempts remain, else ERROR, refunded;
2. tops the scoring queue up: a scoring message is a fungible wake-up call, so when
   fewer messages wait in the broker than claimable QUEUED submissions (Redis restarted
   without its data, a publish lost while Redis was down), it publishes the difference;
3. re-sends emails whose send task was lost or whose retries stopped early
   (``server.outbox.services.resend_lost``);
4. reaps orphan sandboxes (``runs.reap_orphans``): ours whose attempt is no longer the
   live one, with their run directories (and /out mounts) and dead warm pools' directories;
5. removes what killed processes left on this host's disk (``server/ops/leftovers.py``).

Each step is independent (Redis down must not stop the reclaiming). Duplicates it may
cause are harmless: a task only acts after winning a conditional claim.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from django.conf import settings
from django.utils import timezone

from server.ops.leftovers import remove_leftovers_now_and_then
from server.outbox.services import resend_lost
from server.submissions import lifecycle, routing, runs
from server.submissions.models import Status, Submission

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    report.emails = _guarded("emails", lambda: resend_lost(now), 0)
    if reap:
        report.reaped = runs.reap_orphans()
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
    reclaimed = abandoned = 0
    expired = Submission.objects.filter(status=Status.RUNNING, lease_until__lt=now)
    for submission in expired:
        result = lifecycle.submission_record_infrastructure_failure(
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
    # The grace covers a publish that is still on its way after its commit.
    cutoff = now - dt.timedelta(seconds=settings.KATAKANA_REQUEUE_GRACE_SECONDS)
    published = 0
    # Per scoring queue (one, or a CPU and a GPU queue: routing.py), for its kinds only.
    for queue, kinds in routing.score_queues().items():
        claimable = lifecycle.claimable_queued(now).filter(
            enqueued_at__lt=cutoff, worker_kind__in=kinds
        )
        needed = claimable.count()
        missing = needed - waiting_messages(queue) if needed else 0
        if missing <= 0:
            continue
        rows = claimable.order_by("enqueued_at", "pk").values_list("pk", "worker_kind")
        for pk, kind in rows[:missing]:
            routing.publish_score_message(pk, kind=kind)
            published += 1
    return published
