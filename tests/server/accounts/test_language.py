"""The learner's language is chosen once (their browser at the first signed-in visit,
then the header switch), stored on the account, and used for pages and every email."""

from __future__ import annotations

from django.conf import settings
from django.test import Client
from django.urls import reverse

from server.accounts.emails import enrolment_message, invitation_message, password_reset_message
from server.accounts.models import User
from server.outbox.models import EmailKind, OutboxEmail
from server.outbox.services import build_message
from tests.factories import make_submission


def _lang(response) -> str:  # type: ignore[no-untyped-def]
    html = response.content.decode()
    return html.split('<html lang="', 1)[1].split('"', 1)[0]


def test_an_english_browser_stays_english_through_login_and_the_account_keeps_it(
    client, course, learner
):  # type: ignore[no-untyped-def]
    english = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
    assert _lang(client.get(reverse("login"), **english)) == "en"

    response = client.post(
        reverse("login"), {"username": learner.email, "password": "pw-" + learner.email}, **english
    )
    assert response.status_code == 302

    assert _lang(client.get(reverse("course", args=[course.code]), **english)) == "en"
    learner.refresh_from_db()
    assert learner.language == "en"
    # Another browser (Japanese, no cookie) still gets the account's language.
    other = Client()
    other.force_login(learner)
    assert _lang(other.get(reverse("account_settings"), HTTP_ACCEPT_LANGUAGE="ja")) == "en"


def test_a_japanese_browser_is_stored_as_japanese(client, learner):  # type: ignore[no-untyped-def]
    client.force_login(learner)
    client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="ja,en;q=0.5")
    learner.refresh_from_db()
    assert learner.language == "ja"


def test_the_header_switch_is_stored_on_the_account(client, learner):  # type: ignore[no-untyped-def]
    client.force_login(learner)
    client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="ja")

    response = client.post(reverse("set_language"), {"language": "en", "next": reverse("home")})

    assert response.status_code == 302
    learner.refresh_from_db()
    assert learner.language == "en"
    other = Client()
    other.force_login(learner)
    assert _lang(other.get(reverse("account_settings"), HTTP_ACCEPT_LANGUAGE="ja")) == "en"


def test_the_account_wins_over_a_stale_language_cookie(client, learner):  # type: ignore[no-untyped-def]
    learner.language = "en"
    learner.save(update_fields=["language"])
    client.force_login(learner)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ja"
    assert _lang(client.get(reverse("account_settings"))) == "en"


def test_an_unknown_language_from_the_switch_changes_nothing(client, learner):  # type: ignore[no-untyped-def]
    learner.language = "en"
    learner.save(update_fields=["language"])
    client.force_login(learner)
    client.post(reverse("set_language"), {"language": "xx", "next": "/"})
    learner.refresh_from_db()
    assert learner.language == "en"


def test_every_email_is_in_the_recipients_stored_language(course, learner, instructor):  # type: ignore[no-untyped-def]
    learner.language = "en"
    learner.save(update_fields=["language"])
    scored = make_submission(course, learner, accuracy=0.99)
    failed = make_submission(
        course, learner, status="failed", error_class="time_limit", error_code="time_limit"
    )
    messages = {
        "result": build_message(
            OutboxEmail(submission=scored, generation=1, kind=EmailKind.RESULT, to=learner.email)
        ),
        "failure": build_message(
            OutboxEmail(submission=failed, generation=1, kind=EmailKind.FAILURE, to=learner.email)
        ),
        "invitation": invitation_message(user=learner, course=course, invited_by=instructor),
        "enrolment": enrolment_message(user=learner, course=course, invited_by=instructor),
        "password_reset": password_reset_message(user=learner),
    }
    # The course name and the katakana labels are Japanese by nature; the words around
    # them are not: no hiragana anywhere in an English email.
    in_japanese = [
        kind
        for kind, message in messages.items()
        if any("\u3040" <= ch <= "\u309f" for ch in message.subject + message.body)
    ]
    assert in_japanese == []

    learner.language = "ja"
    learner.save(update_fields=["language"])
    assert any("\u3040" <= ch <= "\u309f" for ch in password_reset_message(user=learner).body)


def test_a_learner_who_never_visited_gets_the_sites_default_language(course, instructor):  # type: ignore[no-untyped-def]
    invited = User.objects.create_user(email="new@example.com")
    assert invited.language == ""
    message = invitation_message(user=invited, course=course, invited_by=instructor)
    assert message.extra_headers["Content-Language"] == settings.LANGUAGE_CODE


def test_a_switch_made_on_the_login_page_is_kept_at_the_first_login(client, learner):  # type: ignore[no-untyped-def]
    japanese = {"HTTP_ACCEPT_LANGUAGE": "ja"}
    client.post(reverse("set_language"), {"language": "en", "next": reverse("login")}, **japanese)
    client.post(
        reverse("login"), {"username": learner.email, "password": "pw-" + learner.email}, **japanese
    )

    assert _lang(client.get(reverse("account_settings"), **japanese)) == "en"
    learner.refresh_from_db()
    assert learner.language == "en"
