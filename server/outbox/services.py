"""The outbox's rules: an email is owed in a transaction, sent after commit, at most once.

The app that owes an email writes its row inside the transaction that creates the
obligation (``OutboxEmail.objects.create`` or ``recipient_email_create``) and calls
``send_on_commit``; the send happens after commit, outside any transaction, claimed with
a conditional update so two senders never both send. A transient failure (the relay
down, a 4xx) is retried with back-off up to KATAKANA_EMAIL_MAX_ATTEMPTS, counted in the
row; a permanent one (a 5xx refusal of this message, a template that cannot render)
gives up at once and says which. A lost task message is re-sent by the sweeper
(``resend_lost``).

What each kind says and whether it is still wanted when its turn comes is registered
by the app that owns the kind (``register``, from its ``AppConfig.ready``): this module
imports neither submissions nor accounts.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from server.accounts.models import User
from server.celery import app
from server.courses.models import Course
from server.outbox.models import OutboxEmail, OutboxEmailQuerySet

log = logging.getLogger(__name__)

# The send task's registered name (``tasks.send_outbox_email``), published by name so
# these rules do not import the task that runs them. The name is the one it had in the
# submissions app: messages queued by an older release still find their task.
SEND_TASK = "submissions.send_outbox_email"


@dataclass(frozen=True)
class EmailKindHandler:
    """How one kind of email is made, and whether it is still wanted at send time."""

    build: Callable[[OutboxEmail], EmailMultiAlternatives]
    needed: Callable[[OutboxEmail], bool]


_HANDLERS: dict[str, EmailKindHandler] = {}


def register(
    kind: str,
    *,
    build: Callable[[OutboxEmail], EmailMultiAlternatives],
    needed: Callable[[OutboxEmail], bool] = lambda email: True,
) -> None:
    """Say how emails of ``kind`` are made (called from the owning app's ``ready``)."""
    _HANDLERS[kind] = EmailKindHandler(build=build, needed=needed)


def _handler(email: OutboxEmail) -> EmailKindHandler:
    try:
        return _HANDLERS[str(email.kind)]
    except KeyError:
        raise LookupError(f"no app registered emails of kind {email.kind!r}") from None


def build_message(email: OutboxEmail) -> EmailMultiAlternatives:
    """The message of ``email``, made by its kind's registered builder."""
    return _handler(email).build(email)


class EmailDeferred(Exception):
    """A send failed; the task should try again in ``seconds``."""

    def __init__(self, seconds: float, error: str) -> None:
        super().__init__(error)
        self.seconds = seconds


def recipient_email_create(
    kind: str, user: User, *, course: Course | None = None, invited_by: User | None = None
) -> OutboxEmail:
    """A still-tried email of this kind to ``user`` (for ``course``), else a new one; sent
    after commit either way."""
    pending = (
        OutboxEmail.objects.still_tried().filter(kind=kind, recipient=user, course=course).first()
    )
    email = pending or OutboxEmail.objects.create(
        kind=kind, recipient=user, course=course, invited_by=invited_by, to=user.email
    )
    send_on_commit(email)
    return email


def outbox_retry(emails: OutboxEmailQuerySet) -> int:
    """Give unsent emails a fresh attempt budget and send them now (after commit).

    For an operator once SMTP works again: rows given up at the attempt ceiling, or ones
    waiting out a long back-off. Sent and skipped rows are left alone; the last error stays
    until a send succeeds. Returns how many were queued.
    """
    pending = list(emails.unsent())
    OutboxEmail.objects.filter(pk__in=[e.pk for e in pending]).update(
        attempts=0, claimed_until=None
    )
    for email in pending:
        send_on_commit(email)
    return len(pending)


def send_on_commit(email: OutboxEmail) -> None:
    """Send ``email`` once the surrounding transaction commits."""
    pk = email.pk
    # robust: Redis down must not undo the transaction's work; the sweeper re-sends.
    transaction.on_commit(lambda: _publish_send(pk), robust=True)


def _publish_send(outbox_id: int) -> None:
    app.signature(SEND_TASK, args=(outbox_id,)).apply_async()


def resend_lost(now: dt.datetime) -> int:
    """Send again the emails whose send message was lost (the sweeper's step).

    A failed send holds its claim until its retry is due; past that plus the grace, the
    retry message was lost. Rows at the attempt ceiling are left to the operator.
    """
    grace = dt.timedelta(seconds=settings.KATAKANA_REQUEUE_GRACE_SECONDS)
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
        _publish_send(pk)
        count += 1
    return count


def email_retry_delay(attempts: int) -> float:
    """Back-off after the ``attempts``-th failed send: doubling, at most 15 minutes."""
    return float(min(settings.KATAKANA_EMAIL_RETRY_SECONDS * 2 ** max(attempts - 1, 0), 900))


def outbox_send(outbox_id: int) -> str:
    """Send one outbox email if this caller wins its claim; "sent", "not-claimed" or
    "gave-up" (the attempt ceiling). Raises ``EmailDeferred`` after a failed send.

    The claim (a conditional UPDATE that also counts the attempt) makes two senders never
    send the same row at once; ``sent_at`` is written right after the SMTP server accepts.
    A crash between those two is the one window for a duplicate, which no SMTP client
    can close. On failure the claim is held until the retry is due, so the sweeper does
    not start a second retry chain beside the task's own.
    """
    now = timezone.now()
    claimed = (
        OutboxEmail.objects.still_tried()
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now), pk=outbox_id)
        .update(
            claimed_until=now + dt.timedelta(seconds=settings.EMAIL_TIMEOUT * 3 + 30),
            attempts=F("attempts") + 1,
        )
    )
    if not claimed:
        return "not-claimed"
    email = OutboxEmail.objects.select_related(
        "submission__course", "submission__learner", "recipient", "course", "invited_by"
    ).get(pk=outbox_id)
    try:
        handler = _handler(email)
    except LookupError as exc:  # a kind no app registers (any more): no retry can fix it
        return _give_up_now(email, f"permanent (the email could not be made): {exc}")
    if not handler.needed(email):
        OutboxEmail.objects.filter(pk=outbox_id).update(skipped=True, claimed_until=None)
        return "not-needed"
    try:
        message = handler.build(email)
    except Exception as exc:  # a template or data fault: no retry can fix it
        return _give_up_now(email, f"permanent (the email could not be made): {_text(exc)}")
    try:
        message.send()
    except Exception as exc:
        if permanent_refusal(exc):
            return _give_up_now(email, f"permanent (the mail server refused it): {_text(exc)}")
        error = _text(exc)
        if email.given_up:
            OutboxEmail.objects.filter(pk=outbox_id).update(claimed_until=None, last_error=error)
            log.error("email %s: giving up after %s attempts: %s", outbox_id, email.attempts, error)
            return "gave-up"
        delay = email_retry_delay(email.attempts)
        OutboxEmail.objects.filter(pk=outbox_id).update(
            claimed_until=timezone.now() + dt.timedelta(seconds=delay), last_error=error
        )
        log.warning(
            "email %s: attempt %s failed (%s); retry in %.0f s",
            outbox_id,
            email.attempts,
            error,
            delay,
        )
        raise EmailDeferred(delay, error) from exc
    OutboxEmail.objects.filter(pk=outbox_id).update(sent_at=timezone.now(), last_error="")
    return "sent"


def permanent_refusal(exc: BaseException) -> bool:
    """A 5xx answer about this message or its recipients: sending again cannot help.

    Refusals of the connection, the login or the sender are the deployment's to fix (a
    wrong password, a down relay): those stay transient and are retried, so every email
    goes out once an operator repairs the settings.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(exc, smtplib.SMTPDataError):
        return exc.smtp_code >= 500
    return False


def _give_up_now(email: OutboxEmail, error: str) -> str:
    OutboxEmail.objects.filter(pk=email.pk).update(
        claimed_until=None,
        attempts=max(email.attempts, settings.KATAKANA_EMAIL_MAX_ATTEMPTS),
        last_error=error[:2000],
    )
    log.error("email %s: given up at once: %s", email.pk, error)
    return "gave-up"


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def render_email(
    base: str,
    *,
    language: str,
    to: str,
    context: Callable[[], dict[str, object]],
    headers: dict[str, str] | None = None,
) -> EmailMultiAlternatives:
    """Subject / text / HTML from ``templates/emails/<base>*`` in ``language``; the
    context is built inside that language, since it holds translated strings."""
    with translation.override(language):
        values = context()
        subject = " ".join(render_to_string(f"emails/{base}_subject.txt", values).split())
        text = render_to_string(f"emails/{base}.txt", values)
        html = render_to_string(f"emails/{base}.html", values)
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, [to], headers=headers
    )
    message.attach_alternative(html, "text/html")
    return message
