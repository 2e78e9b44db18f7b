"""Learner pages on PostgreSQL: upload, the submission list, live status and the result."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from server.submissions.models import Phase, Status, Submission
from tests.factories import make_submission
from tests.server.courses.web import notebook_zip


def _login(client, user, language: str = "en"):  # type: ignore[no-untyped-def]
    user.language = language
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def _upload(client, course, name: str = "submit_folder.zip", data: bytes | None = None):  # type: ignore[no-untyped-def]
    archive = SimpleUploadedFile(name, notebook_zip() if data is None else data, "application/zip")
    return client.post(reverse("course", args=[course.code]), {"archive": archive})


def test_course_page_shows_the_quota_line_dates_and_the_upload_form(client, course, learner):
    course.closes_at = timezone.now() + dt.timedelta(days=3)
    course.save(update_fields=["closes_at"])
    make_submission(course, learner, accuracy=0.95)
    page = _login(client, learner).get(reverse("course", args=[course.code])).content.decode()
    assert re.search(
        r'data-testid="quota">Submissions left today: 2/3 — resets at 00:00 JST '
        r"\(in (\d+ h )?\d+ min\)<",
        page,
    )
    assert "Submissions are accepted until" in page
    assert 'id="upload-form"' in page
    assert f'data-max-bytes="{200 * 1024 * 1024}"' in page
    assert 'data-testid="history-chart"' in page


def test_a_closed_course_shows_why_and_offers_no_upload(client, course, learner):
    course.closes_at = timezone.now() - dt.timedelta(hours=1)
    course.save(update_fields=["closes_at"])
    page = _login(client, learner).get(reverse("course", args=[course.code])).content.decode()
    assert "This course is closed" in page
    assert 'id="upload-form"' not in page
    response = _upload(client, course)
    assert "not accepting submissions" in response.content.decode()
    assert not Submission.objects.exists()


def test_a_valid_zip_is_queued_and_the_learner_lands_on_its_page(client, course, learner):
    response = _upload(_login(client, learner), course)
    submission = Submission.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("submission_detail", args=[submission.pk])
    assert (submission.status, submission.entry, submission.charged) == (
        Status.QUEUED,
        "submit_katakana.ipynb",
        True,
    )
    page = client.get(response["Location"]).content.decode()
    assert 'class="step current" data-key="queued"' in page
    assert "position 1 in the queue" in page


def test_a_file_that_is_not_a_zip_is_refused_before_anything_is_stored(client, course, learner):
    response = _upload(_login(client, learner), course, name="model.pickle", data=b"x")
    assert "Upload a .zip file (got model.pickle)." in response.content.decode()
    assert not Submission.objects.exists()


def test_a_broken_zip_is_kept_as_rejected_and_not_charged(client, course, learner):
    response = _upload(_login(client, learner), course, data=b"PK\x03\x04 not really a zip")
    assert response.status_code == 200
    assert 'data-testid="upload-error"' in response.content.decode()
    rejected = Submission.objects.get()
    assert (rejected.status, rejected.charged) == (Status.REJECTED, False)


def test_an_upload_past_the_daily_quota_is_refused(client, course, learner):
    for _ in range(3):
        make_submission(course, learner)
    response = _upload(_login(client, learner), course)
    page = response.content.decode()
    assert "You have used all 3 submissions for today." in page
    assert "Submissions left today: 0/3" in page
    assert Submission.objects.count() == 3


@pytest.mark.parametrize(
    "route", ["submission_detail", "submission_status", "submission_result", "submission_archive"]
)
def test_a_learner_gets_404_for_another_learners_submission(
    client, course, learner, other_learner, route
):
    theirs = make_submission(course, other_learner, with_metrics=True)
    response = _login(client, learner).get(reverse(route, args=[theirs.pk]))
    assert response.status_code == 404


def test_the_uploaded_zip_can_be_downloaded_by_its_learner_and_the_instructors_only(
    client, course, learner, instructor
):
    _upload(_login(client, learner), course, name="私の提出.zip")
    submission = Submission.objects.get(learner=learner)
    url = reverse("submission_archive", args=[submission.pk])
    assert url in client.get(reverse("submission_detail", args=[submission.pk])).content.decode()

    for user in (learner, instructor):
        response = _login(client, user).get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/zip"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Disposition"].startswith("attachment;")
        assert "%E7%A7%81%E3%81%AE%E6%8F%90%E5%87%BA.zip" in response["Content-Disposition"]
        assert b"".join(response.streaming_content) == notebook_zip()


def test_a_purged_zip_is_a_404_and_no_longer_linked(client, course, learner):
    _upload(_login(client, learner), course)
    submission = Submission.objects.get(learner=learner)
    submission.archive.storage.delete(submission.archive.name)
    Submission.objects.filter(pk=submission.pk).update(archive="")

    assert client.get(reverse("submission_archive", args=[submission.pk])).status_code == 404
    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    assert 'data-testid="archive-link"' not in page


def test_a_learner_gets_404_for_a_course_they_are_not_in(client, course, learner):
    from server.courses.services import course_create

    other = course_create(name="別の講座", code="other_course")
    response = _login(client, learner).get(reverse("course", args=[other.code]))
    assert response.status_code == 404


def test_status_json_gives_the_queue_position_and_the_steps(client, course, learner, other_learner):
    first = make_submission(course, other_learner, status=Status.QUEUED)
    mine = make_submission(course, learner, status=Status.QUEUED)
    Submission.objects.filter(pk=first.pk).update(
        created_at=mine.created_at - dt.timedelta(seconds=5)
    )
    status = _login(client, learner).get(reverse("submission_status", args=[mine.pk])).json()
    assert status["queue_position"] == 2
    assert status["queue_label"] == "position 2 in the queue"
    assert [s["state"] for s in status["steps"]] == ["current", "todo", "todo", "todo", "todo"]
    assert status["terminal"] is False


def test_status_json_follows_a_running_submission_through_its_phases(client, course, learner):
    running = make_submission(course, learner, status=Status.RUNNING, phase=Phase.RUNNING)
    status = _login(client, learner).get(reverse("submission_status", args=[running.pk])).json()
    assert [(s["key"], s["state"]) for s in status["steps"]] == [
        ("queued", "done"),
        ("checking", "done"),
        ("running", "current"),
        ("scoring", "todo"),
        ("scored", "todo"),
    ]
    assert status["queue_position"] is None


def test_a_scored_result_shows_the_scores_and_charts_labelled_in_katakana(client, course, learner):
    make_submission(course, learner, accuracy=0.7, with_metrics=True)
    scored = make_submission(course, learner, accuracy=0.99, with_metrics=True, loss=0.05)
    page = (
        _login(client, learner).get(reverse("submission_detail", args=[scored.pk])).content.decode()
    )
    heatmap = page[page.index('data-testid="confusion-heatmap"') :]
    heatmap = heatmap[: heatmap.index("</svg>")]
    assert heatmap.count("<rect") == 225
    assert all(f">{name}</text>" in heatmap for name in "アイウエオカキクケコサシスセソ")
    assert "ア → ア: 10 (100.0%)" in heatmap
    bars = page[page.index('data-testid="per-class-chart"') :]
    assert bars[: bars.index("</svg>")].count("<rect") == 15
    history = page[page.index('data-testid="history-chart"') :]
    assert history[: history.index("</svg>")].count("<circle") == 2
    assert 'data-testid="loss">0.0500<' in page
    assert "Passed (threshold 0.98)" in page


def test_a_failure_shows_the_error_class_message_and_what_to_do(client, course, learner):
    failed = make_submission(
        course,
        learner,
        status=Status.FAILED,
        error_class="time_limit",
        error_code="time_limit",
        error_message="Your code did not finish within %(seconds)s seconds.",
        error_params={"seconds": 600},
        detail="Traceback: secret hidden-set detail",
        log_excerpt="printed test image 0 0 255",
    )
    page = (
        _login(client, learner).get(reverse("submission_detail", args=[failed.pk])).content.decode()
    )
    assert "Your code ran past the time limit" in page
    assert "Your code did not finish within 600 seconds." in page
    assert "Load the model once rather than per batch" in page
    # Hidden-set output stays hidden unless the course chooses to show it.
    assert "printed test image" not in page and "secret hidden-set detail" not in page
    course.show_logs_to_learners = True
    course.save(update_fields=["show_logs_to_learners"])
    page = client.get(reverse("submission_detail", args=[failed.pk])).content.decode()
    assert "printed test image" in page and "secret hidden-set detail" in page


def test_the_result_fragment_carries_the_result_for_the_live_swap(client, course, learner):
    scored = make_submission(course, learner, accuracy=0.99, with_metrics=True)
    response = _login(client, learner).get(reverse("submission_result", args=[scored.pk]))
    fragment = response.content.decode()
    assert "<html" not in fragment
    assert 'data-testid="confusion-heatmap"' in fragment
    assert "no-cache" in response["Cache-Control"]


def test_the_course_page_polls_only_submissions_still_in_flight(client, course, learner):
    done = make_submission(course, learner)
    waiting = make_submission(course, learner, status=Status.QUEUED)
    page = _login(client, learner).get(reverse("course", args=[course.code])).content.decode()
    assert reverse("submission_status", args=[waiting.pk]) in page
    assert reverse("submission_status", args=[done.pk]) not in page


def test_the_pages_speak_japanese_by_default(client, course, learner):
    client.force_login(learner)
    page = client.get(reverse("course", args=[course.code])).content.decode()
    assert '<html lang="ja">' in page


def test_the_result_page_says_whether_the_result_email_went_out(client, course, learner):
    from server.outbox.models import OutboxEmail

    submission = make_submission(course, learner, accuracy=0.5)
    _login(client, learner)
    url = reverse("submission_detail", args=[submission.pk])

    def email_line() -> str:
        page = client.get(url).content.decode()
        match = re.search(r'data-testid="email-status">(.*?)</p>', page, re.S)
        assert match, "the result page has no email status line"
        return " ".join(match.group(1).split())

    assert "being prepared" in email_line()
    email = OutboxEmail.objects.create(
        submission=submission, generation=submission.generation, kind="result", to=learner.email
    )
    assert "waiting to be sent" in email_line()
    email.sent_at = timezone.now()
    email.save(update_fields=["sent_at"])
    assert "sent at" in email_line()
    email.skipped, email.sent_at = True, None
    email.save(update_fields=["skipped", "sent_at"])
    assert "turned result emails off" in email_line()
