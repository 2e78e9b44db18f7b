"""Invitations go through the email outbox: written with the import, never lost with a
task message, not sent to someone who has meanwhile set a password, visible to the
instructor until accepted."""

from __future__ import annotations

import io
import smtplib

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from server.accounts.imports import learners_import, pending_invitations
from server.accounts.models import User
from server.outbox.models import EmailKind, OutboxEmail
from server.outbox.services import outbox_send
from server.submissions import sweeper

CODE = "dl_test_2026"


def import_list(course, text: str, **options):  # type: ignore[no-untyped-def]
    return learners_import(
        course=course, csv_file=io.BytesIO(text.encode()), invited_by=None, **options
    )


def invitations() -> list[OutboxEmail]:
    return list(OutboxEmail.objects.filter(kind=EmailKind.INVITATION).order_by("pk"))


def test_the_import_writes_one_outbox_row_per_invitation_in_its_own_transaction(course):  # type: ignore[no-untyped-def]
    # No on-commit callbacks run: the task message is never published, as if Redis
    # had dropped it. The obligation is in the database all the same.
    import_list(course, f"A,a@example.com,{CODE}\nB,b@example.com,{CODE}\n")

    rows = invitations()
    assert [(r.to, r.course_id, r.sent_at) for r in rows] == [
        ("a@example.com", course.pk, None),
        ("b@example.com", course.pk, None),
    ]
    assert [r.recipient.email for r in rows] == ["a@example.com", "b@example.com"]  # type: ignore[union-attr]
    assert mail.outbox == []


def test_a_lost_task_message_is_resent_by_the_sweeper(course, eager_celery):  # type: ignore[no-untyped-def]
    import_list(course, f"A,a@example.com,{CODE}\n")  # the publish never happens
    assert mail.outbox == []

    later = timezone.now() + timezone.timedelta(minutes=10)
    report = sweeper.sweep(now=later, reap=False)

    assert report.emails == 1
    assert [m.to for m in mail.outbox] == [["a@example.com"]]
    (row,) = invitations()
    assert row.sent_at is not None and row.attempts == 1
    # Sent once: the next sweep has nothing left to do.
    assert sweeper.sweep(now=later, reap=False).emails == 0
    assert len(mail.outbox) == 1


def test_no_invitation_goes_to_a_learner_who_set_a_password_before_it_was_sent(course):  # type: ignore[no-untyped-def]
    import_list(course, f"A,a@example.com,{CODE}\n")
    user = User.objects.get(email="a@example.com")
    user.set_password("chose-one-already-2026")
    user.save()

    (row,) = invitations()
    assert outbox_send(row.pk) == "not-needed"

    row.refresh_from_db()
    assert row.skipped and row.sent_at is None
    assert mail.outbox == []


def test_resending_reuses_a_pending_invitation_instead_of_doubling_it(course):  # type: ignore[no-untyped-def]
    text = f"A,a@example.com,{CODE}\n"
    import_list(course, text)
    import_list(course, text, resend_invitations=True)
    assert len(invitations()) == 1

    outbox_send(invitations()[0].pk)
    import_list(course, text, resend_invitations=True)  # sent, never used: a new one
    assert [r.sent_at is not None for r in invitations()] == [True, False]


def test_a_failed_invitation_keeps_its_error_and_is_retried(  # type: ignore[no-untyped-def]
    course, monkeypatch: pytest.MonkeyPatch
):
    from server.outbox import services as outbox

    import_list(course, f"A,a@example.com,{CODE}\n")
    (row,) = invitations()

    def refused(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refused)
    with pytest.raises(outbox.EmailDeferred):
        outbox_send(row.pk)
    monkeypatch.undo()

    row.refresh_from_db()
    assert row.attempts == 1 and row.sent_at is None
    assert "SMTPServerDisconnected" in row.last_error
    (pending,) = pending_invitations(course)
    assert pending.state == "sending"

    # Once the retry is due, the next send goes out.
    OutboxEmail.objects.filter(pk=row.pk).update(claimed_until=None)
    assert outbox_send(row.pk) == "sent"
    assert [m.to for m in mail.outbox] == [["a@example.com"]]


def test_the_import_page_lists_invitations_not_yet_accepted(  # type: ignore[no-untyped-def]
    client, course, instructor, learner
):
    import_list(course, f"A,a@example.com,{CODE}\nB,b@example.com,{CODE}\n")
    outbox_send(invitations()[0].pk)
    OutboxEmail.objects.filter(pk=invitations()[1].pk).update(
        attempts=99, last_error="SMTPRecipientsRefused: 550 no such user"
    )
    client.force_login(instructor)
    with_lang = {"HTTP_ACCEPT_LANGUAGE": "en"}

    page = client.get(reverse("learners_import", args=[CODE]), **with_lang)

    pending = page.context["pending"]
    assert [(p.user.email, p.state) for p in pending] == [
        ("a@example.com", "sent"),
        ("b@example.com", "failed"),
    ]  # the fixture learner has a password: not listed
    body = page.content.decode()
    assert "550 no such user" in body
    assert learner.email not in body
