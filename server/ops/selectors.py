"""Reads for operations: the scoring queue and the email outbox as the database sees them.

The database, not Redis, is the truth about what is waiting: a message can sit in Redis
for a submission that is already done (a duplicate), and a QUEUED row can have lost its
message (Redis restored from an older snapshot). Alerting on these rows catches both.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from server.outbox.models import OutboxEmail
from server.submissions.models import Status, Submission


@dataclass(frozen=True)
class QueueStats:
    queued: int
    running: int
    # Of ``queued``, how many are rescores (generation > 1) rather than fresh uploads.
    queued_rescores: int
    oldest_queued_age_seconds: float | None


def queue_stats() -> QueueStats:
    """Submissions QUEUED and RUNNING, and how long the oldest queued upload has waited.

    The age counts from the upload (``created_at``) and only over first-generation rows:
    a rescore keeps its original upload time, so a course-wide rescore would otherwise
    read as a weeks-old backlog and page someone for nothing.
    """
    # The WHERE lets PostgreSQL use the (status, created_at) index instead of a full scan.
    totals = Submission.objects.filter(status__in=[Status.QUEUED, Status.RUNNING]).aggregate(
        queued=Count("id", filter=Q(status=Status.QUEUED)),
        running=Count("id", filter=Q(status=Status.RUNNING)),
        rescores=Count("id", filter=Q(status=Status.QUEUED, generation__gt=1)),
    )
    oldest = Submission.objects.queued_uploads().aggregate(oldest=Min("created_at"))["oldest"]
    age = (timezone.now() - oldest).total_seconds() if oldest is not None else None
    return QueueStats(
        queued=totals["queued"],
        running=totals["running"],
        queued_rescores=totals["rescores"],
        oldest_queued_age_seconds=age,
    )


@dataclass(frozen=True)
class OutboxStats:
    # Owed and still being tried (including retries waiting for their back-off).
    unsent: int
    # Gave up at KATAKANA_EMAIL_MAX_ATTEMPTS: nobody will send these without an operator.
    failed: int
    oldest_unsent_age_seconds: float | None
    last_error: str


def outbox_stats() -> OutboxStats:
    """Emails owed and not sent, those given up on, and how long the oldest has waited."""
    unsent = OutboxEmail.objects.unsent()
    ceiling = settings.KATAKANA_EMAIL_MAX_ATTEMPTS
    totals = unsent.aggregate(
        unsent=Count("id", filter=Q(attempts__lt=ceiling)),
        failed=Count("id", filter=Q(attempts__gte=ceiling)),
        oldest=Min("created_at", filter=Q(attempts__lt=ceiling)),
    )
    last_error = ""
    if totals["unsent"] or totals["failed"]:  # the usual answer is none: no second query
        latest = unsent.exclude(last_error="").order_by("-created_at")
        last_error = (latest.values_list("last_error", flat=True).first() or "")[:300]
    oldest = totals["oldest"]
    return OutboxStats(
        unsent=totals["unsent"],
        failed=totals["failed"],
        oldest_unsent_age_seconds=(
            (timezone.now() - oldest).total_seconds() if oldest is not None else None
        ),
        last_error=last_error,
    )
