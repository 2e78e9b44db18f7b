"""The account settings page: profile, language, email opt-out, personal API tokens."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.urls import reverse

from server.accounts.models import ApiToken
from server.accounts.tokens import api_token_authenticate, api_token_create


def test_saving_settings_changes_name_language_and_email_opt_out(client, learner):  # type: ignore[no-untyped-def]
    client.force_login(learner)

    response = client.post(
        reverse("account_settings"), {"display_name": "カナ 太郎", "language": "en"}
    )

    assert response.status_code == 302
    learner.refresh_from_db()
    assert (learner.display_name, learner.language, learner.email_results) == (
        "カナ 太郎",
        "en",
        False,  # an unticked checkbox is an opt-out
    )
    # The cookie is what LocaleMiddleware reads first: the choice applies at once.
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    page = client.get(reverse("account_settings"))
    assert '<html lang="en">' in page.content.decode()


def test_the_saved_language_applies_on_a_browser_without_a_language_cookie(client, learner):  # type: ignore[no-untyped-def]
    learner.language = "en"
    learner.save(update_fields=["language"])
    client.force_login(learner)

    page = client.get(reverse("account_settings"), HTTP_ACCEPT_LANGUAGE="ja")

    assert '<html lang="en">' in page.content.decode()


def test_an_unknown_language_is_refused(client, learner):  # type: ignore[no-untyped-def]
    client.force_login(learner)

    response = client.post(reverse("account_settings"), {"language": "xx"})

    assert response.status_code == 400
    learner.refresh_from_db()
    assert learner.language == "ja"


def test_a_new_token_is_shown_once_and_only_its_hash_is_stored(client, learner):  # type: ignore[no-untyped-def]
    client.force_login(learner)

    response = client.post(reverse("api_token_create"), {"name": "laptop"})

    raw = response.context["new_token"]
    assert raw.startswith("kt_") and raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=learner)
    assert token.hashed == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(list(ApiToken.objects.values_list()))
    listing = client.get(reverse("account_settings")).content.decode()
    assert "laptop" in listing and f"kt_{token.prefix}_" in listing
    assert raw not in listing


def test_revoking_a_token_stops_it_working(client, learner):  # type: ignore[no-untyped-def]
    token, raw = api_token_create(user=learner, name="ci")
    assert api_token_authenticate(raw) == learner
    client.force_login(learner)

    response = client.post(reverse("api_token_revoke", args=[token.pk]))

    assert response.status_code == 302
    assert api_token_authenticate(raw) is None


def test_a_learner_cannot_revoke_someone_elses_token(client, learner, other_learner):  # type: ignore[no-untyped-def]
    token, raw = api_token_create(user=other_learner, name="theirs")
    client.force_login(learner)

    response = client.post(reverse("api_token_revoke", args=[token.pk]))

    assert response.status_code == 404
    assert api_token_authenticate(raw) == other_learner


def test_a_token_with_a_right_prefix_but_wrong_secret_is_refused(learner):  # type: ignore[no-untyped-def]
    token, raw = api_token_create(user=learner, name="x")

    assert api_token_authenticate(raw[:-2] + ("AA" if raw[-2:] != "AA" else "BB")) is None
    assert api_token_authenticate(f"kt_{token.prefix}_") is None
    assert api_token_authenticate("") is None
