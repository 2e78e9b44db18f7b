"""Rate limits: password-reset emails, uploads and API calls, counted in the real Redis."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from django.urls import reverse

from server.accounts.tokens import api_token_create
from server.ratelimits import client_ip
from server.submissions.models import Submission

CODE = "dl_test_2026"


def reset(client: Client, email: str, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(reverse("password_reset"), {"email": email}, **headers)


def test_reset_emails_to_one_address_stop_at_the_limit_and_say_why_in_japanese(  # type: ignore[no-untyped-def]
    client, learner, eager_celery, django_capture_on_commit_callbacks
):
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert reset(client, learner.email).status_code == 302
    assert len(mail.outbox) == 3

    refused = reset(client, learner.email)

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "パスワード再設定の依頼が多すぎます" in refused.content.decode()
    assert len(mail.outbox) == 3
    # Another address is not held back by this one's count.
    assert reset(client, "someone-else@example.com").status_code == 302


def test_the_address_limit_ignores_case_and_spaces(client, learner, settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_RATE_PASSWORD_RESET = "1/h"
    assert reset(client, learner.email).status_code == 302
    assert reset(client, f"  {learner.email.upper()} ").status_code == 429


def test_reset_requests_from_one_client_are_limited_across_addresses(client, db, settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_RATE_PASSWORD_RESET_IP = "4/h"
    codes = [reset(client, f"user{n}@example.com").status_code for n in range(5)]
    assert codes == [302, 302, 302, 302, 429]
    # Same limit, another client address: still served.
    assert reset(client, "user9@example.com", REMOTE_ADDR="10.1.2.3").status_code == 302


def test_an_english_user_gets_the_limit_message_in_english(client, learner, settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_RATE_PASSWORD_RESET = "1/h"
    client.cookies["django_language"] = "en"
    reset(client, learner.email)
    page = reset(client, learner.email, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Too many password reset requests. Please wait" in page


def broken_zip() -> SimpleUploadedFile:
    return SimpleUploadedFile("broken.zip", b"PK\x05\x06" + b"\0" * 18, "application/zip")


def test_uploads_past_the_limit_are_refused_before_they_are_stored(  # type: ignore[no-untyped-def]
    client, course, learner, settings
):
    settings.KATAKANA_RATE_UPLOAD = "2/h"
    client.force_login(learner)
    url = reverse("course", args=[CODE])
    first = [client.post(url, {"archive": broken_zip()}) for _ in range(2)]
    assert [r.status_code for r in first] == [200, 200]  # rejected by intake, kept
    assert Submission.objects.filter(learner=learner).count() == 2

    refused = client.post(url, {"archive": broken_zip()})  # the learner reads Japanese

    assert refused.status_code == 429
    assert Submission.objects.filter(learner=learner).count() == 2
    assert "ローカルチェック（katakana-check、ガイドを参照）" in refused.content.decode()


def test_the_api_answers_429_with_retry_after_past_the_limit(  # type: ignore[no-untyped-def]
    course, learner, instructor, settings
):
    settings.KATAKANA_RATE_API = "3/m"
    api = Client()
    learner_auth = {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=learner, name='a')[1]}"}
    other_auth = {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=instructor, name='b')[1]}"}
    codes = [api.get(reverse("api:me"), **learner_auth).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]

    refused = api.get(reverse("api:me"), **learner_auth)
    assert refused.json()["code"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 60
    # Counted per token owner: another user is unaffected.
    assert api.get(reverse("api:me"), **other_auth).status_code == 200


def test_api_uploads_share_the_learners_upload_limit(  # type: ignore[no-untyped-def]
    client, course, learner, settings
):
    settings.KATAKANA_RATE_UPLOAD = "1/h"
    client.force_login(learner)
    client.post(reverse("course", args=[CODE]), {"archive": broken_zip()})
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=learner, name='a')[1]}"}

    refused = Client().post(
        reverse("api:submissions"), {"archive": broken_zip(), "course": CODE}, **auth
    )

    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert Submission.objects.filter(learner=learner).count() == 1


def test_a_cache_outage_fails_open(client, learner, settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_RATE_PASSWORD_RESET = "1/h"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # the discard port: nothing listens
        }
    }
    codes = [reset(client, learner.email).status_code for _ in range(3)]
    assert codes == [302, 302, 302]


@pytest.mark.parametrize(
    ("behind_proxy", "meta", "expected"),
    [
        (False, {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, "10.0.0.5"),
        (True, {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, "1.2.3.4"),
        (True, {"REMOTE_ADDR": "10.0.0.5"}, "10.0.0.5"),
    ],
)
def test_the_client_address_comes_from_the_proxy_only_behind_one(  # type: ignore[no-untyped-def]
    settings, behind_proxy, meta, expected
):
    settings.KATAKANA_BEHIND_PROXY = behind_proxy
    request = RequestFactory().get("/", **meta)
    assert client_ip(request) == expected


def test_invalid_api_tokens_from_one_address_are_stopped(client, learner, settings):  # type: ignore[no-untyped-def]
    # Before, 200 guesses in 0.9 s all reached the database and none was slowed.
    settings.KATAKANA_RATE_API_TOKEN_FAILURES_IP = "5/m"
    _token, raw = api_token_create(user=learner, name="real")
    guess = {"HTTP_AUTHORIZATION": "Bearer kt_0000_guess", "HTTP_ACCEPT_LANGUAGE": "en"}
    statuses = [client.get("/api/me/", **guess).status_code for _ in range(7)]
    assert statuses == [401] * 5 + [429, 429]
    refused = client.get("/api/me/", **guess)
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0
    # Another address still gets in with a real token.
    ok = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR="10.4.4.4")
    assert ok.status_code == 200
