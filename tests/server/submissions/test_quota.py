"""The daily quota: what counts, grants, the quota line in both languages, and a race.

The race test sends 50 uploads at once from 50 threads, each on its own PostgreSQL
connection (``transactional_db``: the rows must really be committed for the others to
see), against a quota of 3: the row lock in ``submission_create`` must let exactly 3 in.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.utils import translation

from server.courses.models import QuotaGrant
from server.submissions import intake
from server.submissions.models import Status, Submission
from server.submissions.quota import quota_state
from server.submissions.selectors import quota_line
from tests.factories import make_submission
from tests.server.courses.web import notebook_zip

JST = ZoneInfo("Asia/Tokyo")
# 18:48 JST: 5 h 12 min before the course day ends.
EVENING = dt.datetime(2026, 5, 11, 18, 48, tzinfo=JST)


def _evening_state(course, learner, used: int):  # type: ignore[no-untyped-def]
    for _ in range(used):
        make_submission(course, learner, created_at=EVENING - dt.timedelta(hours=2))
    return quota_state(learner.enrollments.get(), now=EVENING)


def test_the_quota_line_reads_as_the_course_wrote_it_in_japanese(course, learner):
    state = _evening_state(course, learner, used=1)
    with translation.override("ja"):
        line = quota_line(state, course, now=EVENING)
    assert line == "本日の残り投稿回数 2/3 — 00:00 JST にリセット（あと 5時間12分）"


def test_the_quota_line_in_english(course, learner):
    state = _evening_state(course, learner, used=1)
    with translation.override("en"):
        line = quota_line(state, course, now=EVENING)
    assert line == "Submissions left today: 2/3 — resets at 00:00 JST (in 5 h 12 min)"
    last_minutes = EVENING.replace(hour=23, minute=40)
    with translation.override("en"):
        assert quota_line(state, course, now=last_minutes).endswith("(in 20 min)")


def test_the_quota_line_names_the_course_time_zone(course, learner):
    course.time_zone = "Europe/Berlin"
    course.save(update_fields=["time_zone"])
    state = quota_state(learner.enrollments.get(), now=EVENING)
    with translation.override("en"):
        assert "resets at 00:00 CEST" in quota_line(state, course, now=EVENING)


def test_only_charged_submissions_of_the_course_day_count(course, learner):
    yesterday = EVENING - dt.timedelta(days=1)
    make_submission(course, learner, created_at=yesterday)
    make_submission(course, learner, status=Status.REJECTED, created_at=EVENING)
    make_submission(course, learner, status=Status.ERROR, created_at=EVENING)
    make_submission(course, learner, status=Status.FAILED, created_at=EVENING)
    # 00:30 JST is still "yesterday" in UTC, but already today for the course.
    make_submission(course, learner, created_at=EVENING.replace(hour=0, minute=30))
    state = quota_state(learner.enrollments.get(), now=EVENING)
    assert (state.used, state.remaining) == (2, 1)


def test_a_grant_adds_slots_on_its_own_day_only(course, learner, instructor):
    enrollment = learner.enrollments.get()
    QuotaGrant.objects.create(
        enrollment=enrollment, day=EVENING.date(), extra=2, reason="障害", granted_by=instructor
    )
    assert quota_state(enrollment, now=EVENING).limit == 5
    assert quota_state(enrollment, now=EVENING + dt.timedelta(days=1)).limit == 3


@pytest.mark.slow
def test_fifty_parallel_uploads_at_quota_three_accept_exactly_three(
    transactional_db, course, learner
):
    course.max_in_flight = 60  # only the daily quota may stop these uploads
    course.save(update_fields=["max_in_flight"])
    payload = notebook_zip()
    start = threading.Barrier(50)
    accepted: list[int] = []
    refused: list[str] = []
    crashed: list[BaseException] = []

    def upload() -> None:
        try:
            start.wait()
            upload = SimpleUploadedFile("submit.zip", payload, "application/zip")
            submission = intake.submission_create(learner=learner, course=course, upload=upload)
            accepted.append(submission.pk)
        except intake.SubmissionRejected as rejected:
            refused.append(rejected.code)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            crashed.append(exc)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=upload) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not crashed, crashed
    assert len(accepted) == 3
    assert refused == ["quota_exhausted"] * 47
    assert Submission.objects.charged().count() == 3
    assert quota_state(learner.enrollments.get()).remaining == 0
    assert all(Path(s.archive.path).is_file() for s in Submission.objects.all())
