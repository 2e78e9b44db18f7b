"""Which scoring queue a submission's message goes to, and which submissions a worker takes.

The kind (``cpu`` or ``gpu``) is decided once, at upload, from the frameworks the zip
imports (``scorer.frameworks``) and stored on the submission. Messages are only wake-up
calls (``services.submission_claim``), so routing is enforced where work is claimed:
a worker claims only the kinds in ``KATAKANA_WORKER_KINDS``; the queue merely wakes the
right workers. An operator sends everything to one queue by leaving
``KATAKANA_SCORE_QUEUE_CPU`` unset (the default) and letting workers serve both kinds.
"""

from __future__ import annotations

from django.conf import settings

from scorer.frameworks import CPU, WORKER_KINDS


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
