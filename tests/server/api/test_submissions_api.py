"""The HTTP API: bearer-token authentication, upload, list and detail of submissions."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from server.accounts.tokens import api_token_create, api_token_revoke
from server.submissions.models import Status, Submission
from tests.factories import make_submission
from tests.scorer.zips import make_zip

CODE = "dl_test_2026"
VERIFIED = (
    "import numpy as np\n\n\n"
    "def predict(test_data):\n"
    "    return np.zeros(len(test_data), dtype=np.int64)\n"
)


@pytest.fixture
def api() -> Client:
    # CSRF checks on, as for a browser: token requests must not need a CSRF token.
    return Client(enforce_csrf_checks=True)


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def learner_token(learner) -> str:  # type: ignore[no-untyped-def]
    return api_token_create(user=learner, name="test")[1]


def zip_upload(
    tmp_path: Path, files: dict[str, str], name: str = "submission.zip"
) -> SimpleUploadedFile:
    path = make_zip(tmp_path / name, files)
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/zip")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Token kt_abc", "Bearer kt_000000000000_not-a-real-token", "Bearer nonsense"],
)
def test_requests_without_a_valid_token_are_401_with_a_json_error(api, db, header):  # type: ignore[no-untyped-def]
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = api.get(reverse("api:submissions"), **extra)

    assert response.status_code == 401
    body = response.json()
    assert body["code"] in {"missing_token", "invalid_token"} and body["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_401(api, learner):  # type: ignore[no-untyped-def]
    token, raw = api_token_create(user=learner, name="old")
    api_token_revoke(user=learner, token_id=token.pk)

    response = api.get(reverse("api:submissions"), **bearer(raw))

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_a_session_cookie_alone_does_not_authenticate(api, learner):  # type: ignore[no-untyped-def]
    api.force_login(learner)

    assert api.get(reverse("api:submissions")).status_code == 401


def test_a_token_of_a_deactivated_user_is_401(api, learner, learner_token):  # type: ignore[no-untyped-def]
    learner.is_active = False
    learner.save(update_fields=["is_active"])

    assert api.get(reverse("api:me"), **bearer(learner_token)).status_code == 401


def test_me_lists_the_courses_and_roles(api, learner, learner_token):  # type: ignore[no-untyped-def]
    response = api.get(reverse("api:me"), **bearer(learner_token))

    assert response.status_code == 200
    assert response.json()["courses"] == [{"code": CODE, "name": "テスト講座", "role": "learner"}]


def test_uploading_a_zip_creates_a_queued_submission(api, learner, learner_token, tmp_path):  # type: ignore[no-untyped-def]
    upload = zip_upload(tmp_path, {"submit_katakana.py": VERIFIED, "model.txt": "weights"})

    response = api.post(
        reverse("api:submissions"), {"archive": upload, "course": CODE}, **bearer(learner_token)
    )

    assert response.status_code == 201, response.content
    body = response.json()
    submission = Submission.objects.get(pk=body["id"])
    assert submission.learner == learner
    assert submission.status == Status.QUEUED
    assert submission.contract == "verified"
    assert response["Location"] == body["url"]
    assert body["url"].endswith(reverse("api:submission", args=[submission.pk]))


def test_an_upload_past_the_daily_quota_says_when_it_resets(  # type: ignore[no-untyped-def]
    api, course, learner, learner_token, tmp_path
):
    import datetime as dt

    for _ in range(course.daily_quota):
        make_submission(course, learner, status=Status.SCORED, accuracy=0.9)
    upload = zip_upload(tmp_path, {"submit_katakana.py": VERIFIED})

    response = api.post(
        reverse("api:submissions"), {"archive": upload, "course": CODE}, **bearer(learner_token)
    )

    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "quota_exhausted"
    resets_at = dt.datetime.fromisoformat(body["resets_at"])
    # Midnight of the course's time zone (Asia/Tokyo), within the next day.
    assert resets_at.astimezone(course.tz).time() == dt.time(0, 0)
    wait = int(response["Retry-After"])
    expected = (resets_at - timezone.now()).total_seconds()
    assert 0 < wait <= 86400 and abs(wait - expected) < 5
    assert Submission.objects.filter(learner=learner).count() == course.daily_quota


def test_the_course_may_be_left_out_when_the_learner_has_only_one(
    api, learner, learner_token, tmp_path
):  # type: ignore[no-untyped-def]
    upload = zip_upload(tmp_path, {"submit_katakana.py": VERIFIED})

    response = api.post(reverse("api:submissions"), {"archive": upload}, **bearer(learner_token))

    assert response.status_code == 201


def test_an_archive_without_entry_point_is_422_with_the_specific_error(
    api, learner, learner_token, tmp_path
):  # type: ignore[no-untyped-def]
    upload = zip_upload(tmp_path, {"notes.py": "x = 1\n"})

    response = api.post(
        reverse("api:submissions"), {"archive": upload, "course": CODE}, **bearer(learner_token)
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "no_entry_point"
    assert "notes.py" in body["message"]
    # The refused upload is kept (not charged) and its id returned.
    assert Submission.objects.get(pk=body["submission"]).status == Status.REJECTED


def test_upload_errors_name_what_is_wrong(api, learner, learner_token, tmp_path):  # type: ignore[no-untyped-def]
    url = reverse("api:submissions")

    missing = api.post(url, {"course": CODE}, **bearer(learner_token))
    not_zip = api.post(
        url,
        {"archive": SimpleUploadedFile("model.ipynb", b"{}"), "course": CODE},
        **bearer(learner_token),
    )
    unknown = api.post(
        url,
        {"archive": zip_upload(tmp_path, {"submit_katakana.py": VERIFIED}), "course": "nope"},
        **bearer(learner_token),
    )

    assert (missing.status_code, missing.json()["code"]) == (400, "archive_required")
    assert (not_zip.status_code, not_zip.json()["code"]) == (422, "not_zip")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "course_not_found")


def test_a_second_upload_while_one_is_in_flight_is_409(
    api, course, learner, learner_token, tmp_path
):  # type: ignore[no-untyped-def]
    make_submission(course, learner, status=Status.QUEUED)
    upload = zip_upload(tmp_path, {"submit_katakana.py": VERIFIED})

    response = api.post(
        reverse("api:submissions"), {"archive": upload, "course": CODE}, **bearer(learner_token)
    )

    assert response.status_code == 409
    assert response.json()["code"] == "in_flight"


def test_the_list_holds_only_the_callers_own_submissions(
    api, course, learner, other_learner, learner_token
):  # type: ignore[no-untyped-def]
    mine = make_submission(course, learner, status=Status.SCORED, accuracy=0.9)
    make_submission(course, other_learner, status=Status.SCORED, accuracy=0.5)

    response = api.get(reverse("api:submissions"), **bearer(learner_token))

    assert response.status_code == 200
    assert [s["id"] for s in response.json()["submissions"]] == [mine.pk]


def test_the_detail_reports_scores_per_class_and_errors(api, course, learner, learner_token):  # type: ignore[no-untyped-def]
    per_class = [0.9] * 15
    scored = make_submission(
        course,
        learner,
        status=Status.SCORED,
        accuracy=0.99,
        loss=0.05,
        metrics={"per_class_accuracy": per_class, "balanced_accuracy": 0.9},
        finished_at=timezone.now(),
    )
    failed = make_submission(
        course,
        learner,
        status=Status.FAILED,
        error_class="missing_module",
        error_code="missing_module",
        error_message="Your code imports %(module)s, which is not installed on the server.",
        error_params={"module": "tensorflow"},
    )

    good = api.get(reverse("api:submission", args=[scored.pk]), **bearer(learner_token)).json()
    bad = api.get(reverse("api:submission", args=[failed.pk]), **bearer(learner_token)).json()

    assert (good["status"], good["accuracy"], good["loss"], good["passed"]) == (
        "scored",
        0.99,
        0.05,
        True,
    )
    assert good["per_class_accuracy"][1] == {"class_id": 1, "label": "イ", "accuracy": 0.9}
    assert good["error"] is None
    assert bad["error"]["class"] == "missing_module"
    assert "tensorflow" in bad["error"]["message"]


def test_another_learners_submission_is_404(api, course, learner, other_learner, learner_token):  # type: ignore[no-untyped-def]
    theirs = make_submission(course, other_learner)

    response = api.get(reverse("api:submission", args=[theirs.pk]), **bearer(learner_token))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_upload_past_the_learners_storage_cap_is_409_and_stores_nothing(
    api, course, learner, learner_token, tmp_path, settings
):  # type: ignore[no-untyped-def]
    settings.KATAKANA_LEARNER_STORAGE_MB = 1
    kept = make_submission(course, learner)
    Submission.objects.filter(pk=kept.pk).update(size_bytes=1024 * 1024)
    upload = zip_upload(tmp_path, {"submit_katakana.py": VERIFIED})

    response = api.post(
        reverse("api:submissions"), {"archive": upload, "course": CODE}, **bearer(learner_token)
    )

    assert response.status_code == 409
    assert response.json()["code"] == "storage_full"
    assert Submission.objects.count() == 1
