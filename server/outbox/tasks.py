"""The outbox's one task: send one email (``services.outbox_send``); safe to run twice."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from server.outbox import services


@shared_task(name=services.SEND_TASK, bind=True, max_retries=None)
def send_outbox_email(self: Any, outbox_id: int) -> str:
    # The ceiling lives in the row (OutboxEmail.attempts < KATAKANA_EMAIL_MAX_ATTEMPTS),
    # not in Celery's retry count, so a lost retry message and the sweeper's re-send
    # share one budget.
    try:
        return services.outbox_send(outbox_id)
    except services.EmailDeferred as deferred:
        raise self.retry(countdown=deferred.seconds) from deferred
