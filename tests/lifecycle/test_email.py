"""SMTP down, then up: every result email is sent exactly once; a dead server hits a ceiling.

The worker uses Django's real SMTP backend against a tiny SMTP server run by the test on
a port of its own: first nothing listens there (connection refused), then it does.
"""

from __future__ import annotations

import time

import pytest

from tests.lifecycle import chaos
from tests.workers import celery_worker, wait_until

pytestmark = pytest.mark.slow


def test_smtp_down_then_up_ends_with_exactly_one_email_per_result(lifecycle) -> None:  # type: ignore[no-untyped-def]
    from server.outbox.models import OutboxEmail

    smtp = chaos.SmtpServer()
    env = lifecycle.env(
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp.port),
        EMAIL_TIMEOUT="2",
    )
    submissions = [lifecycle.submit(), lifecycle.submit(fail=True), lifecycle.submit()]
    try:
        with celery_worker(lifecycle.tmp, env=env, name="a", beat=True):
            wait_until(lifecycle.all_terminal, timeout=40, message="all terminal")
            # SMTP is down: every send failed at least twice, none is marked sent.
            wait_until(
                lambda: all(e.attempts >= 2 for e in OutboxEmail.objects.all()),
                timeout=30,
                message="failed retries",
            )
            assert not OutboxEmail.objects.filter(sent_at__isnull=False).exists()
            assert "ConnectionRefusedError" in OutboxEmail.objects.first().last_error
            smtp.start()
            wait_until(lifecycle.emails_sent, timeout=60, message="all emails sent")
            time.sleep(3)  # retries and sweeps still in flight must not send again
    finally:
        smtp.stop()

    assert len(smtp.messages) == len(submissions)
    lifecycle.assert_settled(mailed=[str(m["To"]) for m in smtp.messages])
    assert not OutboxEmail.objects.exclude(last_error="").exists()


def test_a_send_that_keeps_failing_stops_at_the_attempt_ceiling(lifecycle, settings) -> None:  # type: ignore[no-untyped-def]
    """In-process: the ceiling is counted in the row, and the sweeper respects it."""
    from server.outbox import services as outbox
    from server.outbox.models import OutboxEmail
    from server.submissions.sweeper import sweep

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", chaos.free_port()  # nobody there
    settings.KATAKANA_EMAIL_MAX_ATTEMPTS = 3
    settings.KATAKANA_EMAIL_RETRY_SECONDS = 0.01
    email = _result_email(lifecycle)

    results = []
    for _ in range(5):
        time.sleep(0.05)  # past the back-off
        try:
            results.append(outbox.outbox_send(email.pk))
        except outbox.EmailDeferred:
            results.append("deferred")
    assert results == ["deferred", "deferred", "gave-up", "not-claimed", "not-claimed"]
    email.refresh_from_db()
    assert email.attempts == 3 and email.sent_at is None and email.last_error
    OutboxEmail.objects.filter(pk=email.pk).update(created_at=email.created_at.replace(year=2000))
    assert sweep(reap=False).emails == 0  # nothing re-sent past the ceiling


@pytest.mark.parametrize(
    ("rcpt_reply", "expected"),
    [(b"550 5.1.1 no such user", ["gave-up"]), (b"450 4.2.1 try later", ["deferred"])],
)
def test_a_permanent_refusal_gives_up_at_once_and_says_why(  # type: ignore[no-untyped-def]
    lifecycle, settings, rcpt_reply: bytes, expected: list[str]
) -> None:
    from server.outbox import services as outbox

    smtp = chaos.SmtpServer(rcpt_reply=rcpt_reply)
    smtp.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    settings.KATAKANA_EMAIL_MAX_ATTEMPTS = 5
    email = _result_email(lifecycle)
    try:
        try:
            results = [outbox.outbox_send(email.pk)]
        except outbox.EmailDeferred:
            results = ["deferred"]
    finally:
        smtp.stop()
    email.refresh_from_db()
    assert results == expected
    # A 5xx refusal of the recipient cannot succeed later: no four more attempts.
    assert email.given_up == (expected == ["gave-up"])
    assert ("permanent (the mail server refused it)" in email.last_error) == email.given_up
    assert "SMTPRecipientsRefused" in email.last_error


def test_an_email_that_cannot_be_made_gives_up_at_once(  # type: ignore[no-untyped-def]
    lifecycle, settings, monkeypatch
) -> None:
    from django.template import TemplateSyntaxError

    from server.outbox import services as outbox
    from server.submissions import emails

    def broken(*_args: object, **_kwargs: object) -> None:
        raise TemplateSyntaxError("Invalid block tag 'endblocktrans'")

    monkeypatch.setattr(emails, "render_email", broken)
    email = _result_email(lifecycle)
    assert outbox.outbox_send(email.pk) == "gave-up"
    email.refresh_from_db()
    assert email.given_up and email.last_error.startswith("permanent (the email could not be made)")


def test_an_email_of_a_kind_no_app_registers_gives_up_at_once_and_says_which(  # type: ignore[no-untyped-def]
    lifecycle, monkeypatch
) -> None:
    # The outbox knows no kind itself: the owning app registers it (AppConfig.ready). A row
    # whose kind nobody registers any more is a permanent fault, not ten retries.
    from server.outbox import services as outbox

    monkeypatch.delitem(outbox._HANDLERS, "result")
    email = _result_email(lifecycle)
    assert outbox.outbox_send(email.pk) == "gave-up"
    email.refresh_from_db()
    assert email.given_up and email.sent_at is None
    assert email.last_error == (
        "permanent (the email could not be made): no app registered emails of kind 'result'"
    )


def _result_email(lifecycle):  # type: ignore[no-untyped-def]
    """The result email owed for a fresh submission, marked scored (queued, not sent)."""
    from server.submissions import emails
    from server.submissions.models import Status, Submission

    submission = lifecycle.submit()
    Submission.objects.filter(pk=submission.pk).update(status=Status.SCORED)
    submission.refresh_from_db()
    return emails.outbox_create(submission)
