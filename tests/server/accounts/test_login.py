"""Login by email, the django-axes lockout, logout and password reset."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse

from server.accounts.models import User
from server.outbox.models import OutboxEmail

PASSWORD = "pw-learner@example.com"  # set by the learner fixture


def login(client, email: str, password: str):  # type: ignore[no-untyped-def]
    return client.post(reverse("login"), {"username": email, "password": password})


def test_a_learner_logs_in_with_their_email_in_any_letter_case(client, learner):  # type: ignore[no-untyped-def]
    response = login(client, "  Learner@Example.COM ", PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(learner.pk)


def test_a_wrong_password_shows_the_form_again(client, learner):  # type: ignore[no-untyped-def]
    response = login(client, learner.email, "wrong")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_five_failures_lock_the_account_so_the_sixth_attempt_fails_even_with_the_right_password(
    client, learner
):  # type: ignore[no-untyped-def]
    assert settings.AXES_FAILURE_LIMIT == 5
    statuses = []
    for attempt in range(5):
        # Changing the letter case does not buy an attacker a fresh allowance.
        email = learner.email.upper() if attempt % 2 else learner.email
        statuses.append(login(client, email, f"guess-{attempt}").status_code)
    # django-axes answers the failure that reaches the limit with the lockout page.
    assert statuses == [200, 200, 200, 200, 429]

    locked = login(client, learner.email, PASSWORD)

    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_is_per_account_and_address_not_global(client, learner, other_learner):  # type: ignore[no-untyped-def]
    for attempt in range(5):
        login(client, learner.email, f"guess-{attempt}")

    assert login(client, other_learner.email, "pw-other@example.com").status_code == 302


def test_logout_ends_the_session(client, learner):  # type: ignore[no-untyped-def]
    client.force_login(learner)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_an_invited_learner_without_a_password_can_get_a_reset_link_and_set_one(  # type: ignore[no-untyped-def]
    client, course, eager_celery, django_capture_on_commit_callbacks
):
    user = User.objects.create_user(email="invited@example.com", password=None, language="en")
    assert not user.has_usable_password()

    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(reverse("password_reset"), {"email": "Invited@example.com"})

    assert sent.status_code == 302
    (message,) = mail.outbox
    assert message.to == ["invited@example.com"]
    assert message.alternatives[0][1] == "text/html"
    link = re.search(re.escape(settings.SITE_URL) + r"/account/reset/\S+/", message.body)
    assert link is not None
    page = client.get(link.group(0)[len(settings.SITE_URL) :], follow=True)
    assert page.context["validlink"] is True
    client.post(
        page.redirect_chain[-1][0],
        {"new_password1": "fresh-kana-2026", "new_password2": "fresh-kana-2026"},
    )
    assert login(client, "invited@example.com", "fresh-kana-2026").status_code == 302


def test_a_reset_request_for_an_unknown_address_sends_nothing_and_looks_the_same(  # type: ignore[no-untyped-def]
    client, db, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert response.url == reverse("password_reset_done")
    assert mail.outbox == []
    assert not OutboxEmail.objects.exists()


def test_the_reset_pages_render_in_english_and_japanese(client, db):  # type: ignore[no-untyped-def]
    for language in ("ja", "en"):
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        response = client.get(reverse("password_reset"))
        assert response.status_code == 200
        assert f'<html lang="{language}">' in response.content.decode()


def test_a_reset_email_survives_an_smtp_outage_and_its_link_is_made_when_sent(  # type: ignore[no-untyped-def]
    client, learner, monkeypatch
):
    from server.outbox.services import EmailDeferred, outbox_send

    # The request queues the email (no SMTP in the request: the page never depends on it).
    response = client.post(reverse("password_reset"), {"email": learner.email})
    assert response.status_code == 302
    (row,) = OutboxEmail.objects.filter(kind="password_reset")
    assert (row.recipient, row.to, row.sent_at) == (learner, learner.email, None)

    def refused(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refused)
    with pytest.raises(EmailDeferred):
        outbox_send(row.pk)
    monkeypatch.undo()
    row.refresh_from_db()
    assert row.attempts == 1 and "Connection refused" in row.last_error
    # Asked again meanwhile: the pending email is reused, not doubled.
    client.post(reverse("password_reset"), {"email": learner.email})
    assert OutboxEmail.objects.filter(kind="password_reset").count() == 1

    OutboxEmail.objects.filter(pk=row.pk).update(claimed_until=None)  # the retry is due
    assert outbox_send(row.pk) == "sent"
    (message,) = mail.outbox
    link = re.search(re.escape(settings.SITE_URL) + r"/account/reset/\S+/", message.body)
    assert link is not None
    assert message.extra_headers["Content-Language"] == learner.language_in_use
    page = client.get(link.group(0)[len(settings.SITE_URL) :], follow=True)
    assert page.context["validlink"] is True


def test_a_reset_email_to_an_account_deactivated_before_it_went_out_is_not_sent(  # type: ignore[no-untyped-def]
    client, learner
):
    from server.outbox.services import outbox_send

    client.post(reverse("password_reset"), {"email": learner.email})
    learner.is_active = False
    learner.save(update_fields=["is_active"])

    (row,) = OutboxEmail.objects.filter(kind="password_reset")
    assert outbox_send(row.pk) == "not-needed"
    assert mail.outbox == []


def test_one_password_sprayed_across_accounts_from_one_address_is_stopped(client, course, settings):  # type: ignore[no-untyped-def]
    # axes counts per (email, address): before, 200 accounts tried once each were never
    # locked. Failures per address are counted across accounts (django-ratelimit).
    settings.KATAKANA_RATE_LOGIN_FAILURES_IP = "10/h"
    client.cookies["django_language"] = "en"
    statuses = [login(client, f"user{n}@example.com", "Spring2026!").status_code for n in range(12)]
    assert statuses == [200] * 10 + [429, 429]
    blocked = login(client, "user99@example.com", "Spring2026!")
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert "Too many failed logins from your network. Please wait" in blocked.content.decode()
    # Another address is not held back.
    other = client.post(
        reverse("login"),
        {"username": "user1@example.com", "password": "x"},
        REMOTE_ADDR="10.9.8.7",
    )
    assert other.status_code == 200


def test_the_address_limit_counts_failures_only_and_speaks_japanese(client, learner, settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_RATE_LOGIN_FAILURES_IP = "2/h"
    for _ in range(3):  # successful logins never count
        assert login(client, learner.email, PASSWORD).status_code == 302
        client.logout()
    assert login(client, "a@example.com", "x").status_code == 200
    assert login(client, "b@example.com", "x").status_code == 200
    refused = login(client, learner.email, PASSWORD)
    assert refused.status_code == 429
    assert "ログインの失敗が多すぎます" in refused.content.decode()
    assert "_auth_user_id" not in client.session
