"""The email outbox: result and failure emails (once per terminal state) and account emails.

``outbox_create`` runs inside the transaction that records the outcome, so the email
exists exactly when the result does; ``invitation_outbox_create`` likewise inside the
class-list import, and ``password_reset_outbox_create`` for the reset form (whose links
are made at send time). The send happens after commit, outside any transaction, claimed with
a conditional update so two senders never both send. A failed send is retried with
back-off up to KATAKANA_EMAIL_MAX_ATTEMPTS, counted in the row; a lost task message is
re-sent by the sweeper.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Callable

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from server.accounts.models import User
from server.courses.models import Course
from server.submissions.models import (
    EmailKind,
    OutboxEmail,
    OutboxEmailQuerySet,
    Status,
    Submission,
)
from server.submissions.presentation import result_view

log = logging.getLogger(__name__)


class EmailDeferred(Exception):
    """A send failed; the task should try again in ``seconds``."""

    def __init__(self, seconds: float, error: str) -> None:
        super().__init__(error)
        self.seconds = seconds


def outbox_create(submission: Submission, *, previous_accuracy: float | None = None) -> OutboxEmail:
    """The one email of this terminal state (unique per submission generation).

    A rescore (generation > 1) keeps ``previous_accuracy`` so its email can say it is a
    rescore and what changed; a learner who got an unexplained second email would not
    know which score stands.
    """
    kind = EmailKind.RESULT if submission.status == Status.SCORED else EmailKind.FAILURE
    email, _created = OutboxEmail.objects.get_or_create(
        submission=submission,
        generation=submission.generation,
        defaults={
            "kind": kind,
            "to": submission.learner.email,
            "skipped": not submission.learner.email_results,
            "previous_accuracy": previous_accuracy if submission.generation > 1 else None,
        },
    )
    if not email.skipped and email.sent_at is None:
        _send_on_commit(email)
    return email


def invitation_outbox_create(*, user: User, course: Course, invited_by: User | None) -> OutboxEmail:
    """The invitation owed to ``user`` for ``course``: a pending one is reused, not doubled."""
    return _account_email(EmailKind.INVITATION, user, course=course, invited_by=invited_by)


def enrolment_outbox_create(*, user: User, course: Course, invited_by: User | None) -> OutboxEmail:
    """The notice owed to an existing account that was added to ``course``."""
    return _account_email(EmailKind.ENROLMENT, user, course=course, invited_by=invited_by)


def password_reset_outbox_create(*, user: User) -> OutboxEmail:
    """The reset email owed to ``user``: a pending one is reused (its link is made when it
    is sent, so a send delayed by an SMTP outage still carries a fresh token)."""
    return _account_email(EmailKind.PASSWORD_RESET, user)


def _account_email(
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
    _send_on_commit(email)
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
        _send_on_commit(email)
    return len(pending)


def _send_on_commit(email: OutboxEmail) -> None:
    from server.submissions.tasks import send_outbox_email

    # robust: Redis down must not undo the transaction's work; the sweeper re-sends.
    transaction.on_commit(lambda: send_outbox_email.delay(email.pk), robust=True)


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
    if not still_needed(email):
        OutboxEmail.objects.filter(pk=outbox_id).update(skipped=True, claimed_until=None)
        return "not-needed"
    try:
        message = build_message(email)
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


def rescore_context(email: OutboxEmail) -> dict[str, object]:
    """Whether a result or failure email is a rescore's, and the accuracy before it."""
    submission = email.submission
    rescore = bool(email.generation and email.generation > 1)
    change = None
    now, before = (submission.accuracy if submission else None), email.previous_accuracy
    if rescore and now is not None and before is not None:
        change = now - before
    return {
        "rescore": rescore,
        "previous_accuracy": email.previous_accuracy,
        "accuracy_change": "" if change is None else f"{change:+.4f}",
    }


def email_context(submission: Submission) -> dict[str, object]:
    """The result page's and the emails' context: ``presentation.result_view`` laid out."""
    view = result_view(submission)
    error = view.error
    return {
        "submission": submission,
        "course": submission.course,
        "learner": submission.learner,
        "result": view,
        "per_class": [{"name": c.label, "accuracy": c.accuracy} for c in view.per_class],
        "verdict": view.verdict,
        "passed": view.passed,
        "error_title": error.title if error else "",
        "error_advice": error.advice if error else "",
        "error_message": error.message if error else "",
        "url": settings.SITE_URL + reverse("submission_detail", args=[submission.pk]),
        "guide_url": settings.SITE_URL
        + reverse("guide")
        + (f"#error-{submission.error_class}" if submission.error_class else ""),
    }


def still_needed(email: OutboxEmail) -> bool:
    """An account email to a deactivated user, or an invitation whose learner has
    meanwhile set a password, is not sent; result and failure emails always are."""
    user = email.recipient
    if email.kind == EmailKind.INVITATION:
        return user is not None and user.is_active and not user.has_usable_password()
    if email.kind in (EmailKind.PASSWORD_RESET, EmailKind.ENROLMENT):
        return user is not None and user.is_active
    return True


def build_message(email: OutboxEmail) -> EmailMultiAlternatives:
    if email.kind == EmailKind.INVITATION:
        from server.accounts.emails import invitation_message

        assert email.recipient is not None and email.course is not None
        return invitation_message(
            user=email.recipient, course=email.course, invited_by=email.invited_by
        )
    if email.kind == EmailKind.ENROLMENT:
        from server.accounts.emails import enrolment_message

        assert email.recipient is not None and email.course is not None
        return enrolment_message(
            user=email.recipient, course=email.course, invited_by=email.invited_by
        )
    if email.kind == EmailKind.PASSWORD_RESET:
        from server.accounts.emails import password_reset_message

        assert email.recipient is not None
        return password_reset_message(user=email.recipient)
    submission = email.submission
    assert submission is not None
    return render_email(
        str(email.kind),
        language=submission.learner.language_in_use,
        to=email.to,
        context=lambda: {**email_context(submission), **rescore_context(email)},
    )


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
