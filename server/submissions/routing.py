"""Which scoring queue a submission's message goes to, and which submissions a worker takes.

The kind (``cpu`` or ``gpu``) is decided once, at upload, from the frameworks the zip
imports (``scorer.frameworks``) and stored on the submission. Messages are only wake-up
calls (``lifecycle.submission_claim``), so routing is enforced where work is claimed:
a worker claims only the kinds in ``KATAKANA_WORKER_KINDS``; the queue merely wakes the
right workers. An operator sends everything to one queue by leaving
``KATAKANA_SCORE_QUEUE_CPU`` unset (the default) and letting workers serve both kinds.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scorer.frameworks import CPU, WORKER_KINDS
from server.celery import app
from server.submissions.models import Submission

# The scoring task's registered name (``tasks.score_next``). Published by name, so that
# what enqueues work does not import the tasks that do it; the name stays the old one so
# messages queued by an older release still find their task.
SCORE_TASK = "submissions.score_submission"


def queue_for(kind: str) -> str:
    """The queue whose workers a submission of this kind must wake."""
    return settings.KATAKANA_SCORE_QUEUE_CPU if kind == CPU else settings.KATAKANA_SCORE_QUEUE


def score_queues() -> dict[str, list[str]]:
    """Each distinct scoring queue with the kinds routed to it (one entry when unsplit)."""
    queues: dict[str, list[str]] = {}
    for kind in WORKER_KINDS:
        queues.setdefault(queue_for(kind), []).append(kind)
    return queues


def kinds_served() -> list[str]:
    """The kinds this worker claims (``KATAKANA_WORKER_KINDS``)."""
    return [kind for kind in WORKER_KINDS if kind in settings.KATAKANA_WORKER_KINDS]


def enqueue_on_commit(
    submission: Submission, *, stamp: bool = True, countdown: float = 0.0
) -> None:
    """Publish a scoring message once the surrounding transaction commits.

    The message is only a wake-up call: whichever worker takes it claims the fairest
    QUEUED submission (``lifecycle.submission_claim``), so a lost message strands nothing as long
    as the sweeper tops the queue up, and a duplicate finds nothing left to claim. The
    publish is ``robust``: Redis being down must not turn a committed upload into an
    error page; the sweeper publishes the missing message later. ``stamp`` sets
    ``enqueued_at`` (first enqueue, rescore); a retry keeps its place in the order.
    """
    if stamp:
        Submission.objects.filter(pk=submission.pk).update(enqueued_at=timezone.now())
    pk, kind = submission.pk, submission.worker_kind
    transaction.on_commit(
        lambda: publish_score_message(pk, kind=kind, countdown=countdown), robust=True
    )


def publish_score_message(hint_id: int, *, kind: str, countdown: float = 0.0) -> None:
    """Publish one scoring message (a wake-up call) to the queue of ``kind``'s workers."""
    app.signature(SCORE_TASK, args=(hint_id,)).apply_async(
        queue=queue_for(kind), countdown=countdown or None
    )
