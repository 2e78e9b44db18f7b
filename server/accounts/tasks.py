"""Celery tasks for accounts: plain ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from server.accounts import emails


@shared_task(
    name="accounts.send_invitation",
    autoretry_for=(OSError,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=8,
)
def send_invitation(user_id: int, course_id: int, invited_by_id: int | None = None) -> str:
    # Running twice can send a second copy of the same link: harmless, and better than none.
    return emails.invitation_send(user_id=user_id, course_id=course_id, invited_by_id=invited_by_id)
