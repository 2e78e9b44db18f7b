"""Instructor pages on PostgreSQL: access, leaderboard (and its query count), CSV, rescoring,
settings, test-set upload, extra quota slots, the congestion banner, the submission browser."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from server.courses.models import QuotaGrant
from server.courses.services import course_create, enrollment_create
from server.submissions.models import Status, Submission
from server.submissions.quota import quota_state
from tests.conftest import write_small_testset
from tests.factories import make_submission

INSTRUCTOR_GETS = [
    "leaderboard",
    "leaderboard_csv",
    "course_submissions",
    "course_settings",
    "course_testset",
]


def _login(client, user):  # type: ignore[no-untyped-def]
    user.language = "en"
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


@pytest.mark.parametrize("route", INSTRUCTOR_GETS)
def test_a_learner_gets_404_on_every_instructor_page(client, course, learner, route):
    assert _login(client, learner).get(reverse(route, args=[course.code])).status_code == 404


def test_a_learner_cannot_rescore_grant_or_change_settings(client, course, learner):
    mine = make_submission(course, learner)
    enrollment = learner.enrollments.get()
    _login(client, learner)
    posts = [
        (reverse("submission_rescore", args=[course.code, mine.pk]), {}),
        (reverse("course_rescore", args=[course.code]), {}),
        (reverse("quota_grant", args=[course.code, enrollment.pk]), {"extra": 5, "reason": "me"}),
        (reverse("course_settings", args=[course.code]), {"daily_quota": 99}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 404
    mine.refresh_from_db()
    assert mine.generation == 1 and not QuotaGrant.objects.exists()


def test_an_instructor_of_another_course_gets_404(client, course, learner):
    other = course_create(name="別の講座", code="other_course")
    stranger = enrollment_create(course=other, email="t@example.com", role="instructor").user
    theirs = make_submission(course, learner)
    _login(client, stranger)
    assert client.get(reverse("leaderboard", args=[course.code])).status_code == 404
    assert client.get(reverse("submission_detail", args=[theirs.pk])).status_code == 404


def test_the_leaderboard_shows_best_latest_pass_count_and_today(
    client, course, instructor, learner, other_learner
):
    now = timezone.now()
    make_submission(course, learner, accuracy=0.985, created_at=now - dt.timedelta(days=2))
    make_submission(course, learner, accuracy=0.95, created_at=now - dt.timedelta(minutes=5))
    make_submission(course, learner, accuracy=0.999, untrusted=True)  # never the best
    make_submission(course, other_learner, status=Status.FAILED, error_class="time_limit")
    page = _login(client, instructor).get(reverse("leaderboard", args=[course.code]))
    rows = page.context["rows"]
    first, second = rows
    assert (first.email, first.best_accuracy, first.latest_accuracy, first.passed) == (
        "learner@example.com",
        0.985,
        0.999,
        True,
    )
    assert (first.submissions, first.used_today, first.limit_today) == (3, 2, 3)
    assert (second.best_accuracy, second.submissions, second.passed) == (None, 1, False)
    html = page.content.decode()
    assert "1 of 2 learners passed the threshold 0.98." in html
    assert 'data-testid="distribution-chart"' in html


def test_equal_best_scores_rank_by_who_reached_theirs_first(client, course, instructor):
    # "Aoki" sorts first by name but reached 0.99 a day later than "Yamada": Yamada leads,
    # on the page and in the CSV.
    now = timezone.now()
    late = enrollment_create(course=course, email="aoki@example.com", name="Aoki").user
    early = enrollment_create(course=course, email="yamada@example.com", name="Yamada").user
    make_submission(course, late, accuracy=0.99, created_at=now - dt.timedelta(days=1))
    make_submission(course, early, accuracy=0.99, created_at=now - dt.timedelta(days=2))
    make_submission(course, early, accuracy=0.99, created_at=now - dt.timedelta(hours=1))
    client = _login(client, instructor)
    rows = client.get(reverse("leaderboard", args=[course.code])).context["rows"]
    assert [r.name for r in rows[:2]] == ["Yamada", "Aoki"]
    body = client.get(reverse("leaderboard_csv", args=[course.code])).content.decode("utf-8-sig")
    ranked = list(csv.reader(io.StringIO(body)))[1:3]
    assert [(r[0], r[1]) for r in ranked] == [("1", "Yamada"), ("2", "Aoki")]


def test_the_leaderboard_lists_50_a_page_and_finds_filters_and_sorts_on_the_server(
    client, course, instructor
):
    # 120 learners: three pages. A learner is found by name on any page, and a sorted or
    # filtered list keeps each learner's place on the leaderboard.
    for index in range(120):
        user = enrollment_create(
            course=course, email=f"l{index:03}@example.com", name=f"Learner {index:03}"
        ).user
        make_submission(course, user, accuracy=0.8805 + index / 1000)
    client = _login(client, instructor)
    url = reverse("leaderboard", args=[course.code])
    first = client.get(url)
    assert [r.rank for r in first.context["page"]] == list(range(1, 51))
    assert first.context["page"].paginator.num_pages == 3
    assert "Learner 119" in first.content.decode() and "Learner 000" not in first.content.decode()
    last = client.get(url, {"page": 3}).context["page"]
    assert [r.name for r in last][-1] == "Learner 000" and [r.rank for r in last][-1] == 120
    found = client.get(url, {"q": "learner 007"})
    assert [(r.name, r.rank) for r in found.context["page"]] == [("Learner 007", 113)]
    assert found.context["shown"] == 1 and "1 of 120 learners" in found.content.decode()
    by_name = client.get(url, {"sort": "name"}).context["page"]
    assert [r.name for r in by_name][:2] == ["Learner 000", "Learner 001"]
    assert client.get(url, {"passed": "1"}).context["shown"] == 20  # 0.9805 and up
    page = client.get(url, {"sort": "-best", "q": "learner"}).content.decode()
    # Sorting keeps the search, and the header says which way it sorts.
    assert 'aria-sort="descending"' in page and "q=learner" in page


def test_the_leaderboard_takes_the_same_few_queries_for_30_learners_as_for_3(
    client, course, instructor, django_assert_max_num_queries
):
    def add_learners(start: int, count: int) -> None:
        for index in range(start, start + count):
            user = enrollment_create(course=course, email=f"l{index}@example.com").user
            for attempt in range(5):
                make_submission(course, user, accuracy=0.9 + attempt / 100)

    _login(client, instructor)
    url = reverse("leaderboard", args=[course.code])
    add_learners(0, 3)
    with CaptureQueriesContext(connection) as few:
        assert len(client.get(url).context["rows"]) == 3
    add_learners(3, 27)
    # 11 for the table and the chart, 3 for the cohort section: none grows with learners.
    with django_assert_max_num_queries(14) as many:
        assert len(client.get(url).context["rows"]) == 30
    assert len(many.captured_queries) == len(few.captured_queries)
    with CaptureQueriesContext(connection) as csv_queries:
        client.get(reverse("leaderboard_csv", args=[course.code]))
    assert len(csv_queries.captured_queries) <= 10


def test_the_csv_opens_in_excel_with_a_bom_crlf_and_japanese_names(
    client, course, instructor, learner
):
    learner.display_name = "山田 太郎"
    learner.save(update_fields=["display_name"])
    sneaky = enrollment_create(course=course, email="x@example.com", name="=HYPERLINK(1)").user
    make_submission(course, learner, accuracy=0.99)
    make_submission(course, sneaky, accuracy=0.5)
    response = _login(client, instructor).get(reverse("leaderboard_csv", args=[course.code]))
    body = response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="dl_test_2026-')
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    assert text.count("\r\n") == 3 and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0][:3] == ["rank", "name", "email"]
    assert rows[1][:9] == [
        "1", "山田 太郎", "learner@example.com", "0.9900", "no", "0.9900", "no", "no", "yes"
    ]  # fmt: skip
    # A name Excel would run as a formula is written as text.
    assert rows[2][1] == "'=HYPERLINK(1)"


def test_rescoring_one_submission_requeues_it_without_charging_quota(
    client, course, instructor, learner
):
    scored = make_submission(course, learner, accuracy=0.9)
    enrollment = learner.enrollments.get()
    before = quota_state(enrollment)
    response = _login(client, instructor).post(
        reverse("submission_rescore", args=[course.code, scored.pk])
    )
    assert response.status_code == 302
    scored.refresh_from_db()
    assert (scored.status, scored.generation, scored.charged) == (Status.QUEUED, 2, True)
    assert quota_state(enrollment).used == before.used == 1


def test_rescoring_all_requeues_finished_runs_only(client, course, instructor, learner):
    finished = [
        make_submission(course, learner, accuracy=0.9),
        make_submission(course, learner, status=Status.FAILED, error_class="time_limit"),
        make_submission(course, learner, status=Status.ERROR, error_class="infrastructure"),
    ]
    running = make_submission(course, learner, status=Status.RUNNING)
    rejected = make_submission(course, learner, status=Status.REJECTED)
    _login(client, instructor).post(reverse("course_rescore", args=[course.code]))
    statuses = dict(Submission.objects.values_list("pk", "status"))
    assert [statuses[s.pk] for s in finished] == [Status.QUEUED] * 3
    assert statuses[running.pk] == Status.RUNNING
    assert statuses[rejected.pk] == Status.REJECTED


def test_a_submission_whose_zip_was_purged_is_never_requeued(client, course, instructor, learner):
    # It used to be: three failed attempts, a failure email, and the score gone from
    # the leaderboard. Every way in now asks Submission.objects.rescorable().
    purged = make_submission(course, learner, accuracy=0.95, archive="")
    kept = make_submission(course, learner, accuracy=0.9)
    client = _login(client, instructor)
    detail = client.get(reverse("submission_detail", args=[purged.pk])).content.decode()
    assert 'data-testid="rescore"' not in detail
    assert (
        'data-testid="rescore"'
        in client.get(reverse("submission_detail", args=[kept.pk])).content.decode()
    )

    response = client.post(reverse("submission_rescore", args=[course.code, purged.pk]))
    assert response.status_code == 302
    client.post(reverse("course_rescore", args=[course.code]))
    purged.refresh_from_db()
    kept.refresh_from_db()
    assert (purged.status, purged.generation) == (Status.SCORED, 1)
    assert (kept.status, kept.generation) == (Status.QUEUED, 2)


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("archive", ["", "c/test.zip"])
def test_one_rescorable_rule_for_a_row_and_for_a_query(course, learner, status, archive):
    row = make_submission(course, learner, status=status, archive=archive)
    assert row.is_rescorable == Submission.objects.rescorable().filter(pk=row.pk).exists()


def _settings_post(**changes):  # type: ignore[no-untyped-def]
    data = {
        "daily_quota": 5,
        "max_in_flight": 1,
        "pass_threshold": 0.97,
        "overfit_gap": 0.05,
        "wall_seconds": 300,
        "memory_mb": 2048,
        "legacy_allowed": "",
        "show_logs_to_learners": "on",
        "opens_at": "2026-04-01T09:00",
        "closes_at": "2026-07-31T23:59",
        "time_zone": "Asia/Tokyo",
    }
    data.update(changes)
    return data


def test_the_settings_form_saves_every_setting_in_the_course_time_zone(client, course, instructor):
    url = reverse("course_settings", args=[course.code])
    response = _login(client, instructor).post(url, _settings_post())
    assert response.status_code == 302
    course.refresh_from_db()
    assert (course.daily_quota, course.pass_threshold, course.wall_seconds, course.memory_mb) == (
        5,
        0.97,
        300,
        2048,
    )
    assert (course.legacy_allowed, course.show_logs_to_learners) == (False, True)
    assert course.overfit_gap == 0.05
    assert course.opens_at == dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)  # 09:00 JST
    assert 'value="2026-04-01T09:00"' in client.get(url).content.decode()


def test_the_settings_form_refuses_impossible_values(client, course, instructor, settings):
    url = reverse("course_settings", args=[course.code])
    response = _login(client, instructor).post(
        url,
        _settings_post(
            closes_at="2026-03-01T00:00",
            wall_seconds=settings.KATAKANA_WALL_SECONDS + 1,
            pass_threshold=1.5,
            time_zone="Mars/Olympus",
        ),
    )
    errors = response.context["form"].errors
    assert set(errors) == {"closes_at", "wall_seconds", "pass_threshold", "time_zone"}
    course.refresh_from_db()
    assert course.daily_quota == 3


def test_the_settings_page_says_what_each_self_reported_setting_risks(client, course, instructor):
    page = _login(client, instructor).get(reverse("course_settings", args=[course.code]))
    html = page.content.decode()
    assert 'name="legacy_labelled_allowed"' in html and 'name="self_reported_counts"' in html
    help_of = {
        name: re.search(rf'class="help warn" data-testid="help-{name}">(.*?)</p>', html)
        for name in ("legacy_labelled_allowed", "self_reported_counts")
    }
    assert all(help_of.values()), "each risky setting shows its help as a warning"
    assert "hands the hidden labels to the learner&#x27;s code" in help_of[
        "legacy_labelled_allowed"
    ].group(1)  # type: ignore[union-attr]
    assert "can be forged" in help_of["self_reported_counts"].group(1)  # type: ignore[union-attr]


def test_the_settings_page_states_the_risks_in_japanese(client, course, instructor):
    client.force_login(instructor)  # no language chosen: Japanese
    html = client.get(reverse("course_settings", args=[course.code])).content.decode()
    assert "非公開のラベルを受講生のコードに渡します" in html
    assert "偽造できます" in html


@pytest.mark.parametrize("on", [False, True], ids=["both-off", "both-on"])
def test_the_settings_form_saves_the_two_self_reported_settings(client, course, instructor, on):
    course.legacy_labelled_allowed = course.self_reported_counts = not on
    course.save(update_fields=["legacy_labelled_allowed", "self_reported_counts"])
    flags = {
        "legacy_labelled_allowed": "on" if on else "",
        "self_reported_counts": "on" if on else "",
    }
    url = reverse("course_settings", args=[course.code])
    assert _login(client, instructor).post(url, _settings_post(**flags)).status_code == 302
    course.refresh_from_db()
    assert (course.legacy_labelled_allowed, course.self_reported_counts) == (on, on)


def _npy(array: np.ndarray, name: str) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return SimpleUploadedFile(name, buffer.getvalue(), "application/octet-stream")


def test_a_valid_test_set_upload_becomes_the_active_version(client, course, instructor, tmp_path):
    source = write_small_testset(tmp_path / "new", per_class=4, seed=3)
    response = _login(client, instructor).post(
        reverse("course_testset", args=[course.code]),
        {
            "data": _npy(np.load(source / "test_data.npy"), "images.npy"),
            "labels": _npy(np.load(source / "test_label.npy"), "labels.npy"),
            "note": "2026 spring",
        },
    )
    assert response.status_code == 302
    active = course.active_testset
    assert (active.version, active.n, active.note) == (2, 60, "2026 spring")
    page = client.get(reverse("course_testset", args=[course.code])).content.decode()
    assert "v2" in page and "2026 spring" in page


def test_an_invalid_test_set_upload_shows_why_and_changes_nothing(
    client, course, instructor, tmp_path
):
    source = write_small_testset(tmp_path / "bad", per_class=4)
    labels = np.load(source / "test_label.npy")[:-1]  # one label short
    response = _login(client, instructor).post(
        reverse("course_testset", args=[course.code]),
        {
            "data": _npy(np.load(source / "test_data.npy"), "test_data.npy"),
            "labels": _npy(labels, "test_label.npy"),
        },
    )
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert 'data-testid="testset-error"' in response.content.decode()
    assert course.active_testset.version == 1


def test_a_quota_grant_records_the_reason_and_adds_slots_today(client, course, instructor, learner):
    enrollment = learner.enrollments.get()
    for _ in range(3):
        make_submission(course, learner)
    assert quota_state(enrollment).remaining == 0
    _login(client, instructor).post(
        reverse("quota_grant", args=[course.code, enrollment.pk]),
        {"extra": 2, "reason": "サーバー障害のため"},
    )
    grant = QuotaGrant.objects.get()
    assert (grant.extra, grant.reason, grant.granted_by, grant.day) == (
        2,
        "サーバー障害のため",
        instructor,
        course.day_bounds()[0].date(),
    )
    assert quota_state(enrollment).remaining == 2
    client.post(reverse("quota_grant", args=[course.code, enrollment.pk]), {"extra": 1})
    assert QuotaGrant.objects.count() == 1  # no reason, no grant


def test_a_congested_queue_shows_a_banner(client, course, instructor, learner):
    leaderboard = reverse("leaderboard", args=[course.code])
    _login(client, instructor)
    make_submission(course, learner, status=Status.QUEUED)
    assert 'data-testid="queue-banner"' not in client.get(leaderboard).content.decode()
    old = make_submission(course, learner, status=Status.QUEUED)
    Submission.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=11)
    )
    # A run in progress: the queue is busy, not stalled (test_scoring_health has that one).
    lease = timezone.now() + dt.timedelta(seconds=30)
    make_submission(course, learner, status=Status.RUNNING, lease_until=lease)
    assert 'data-testid="queue-banner"' in client.get(leaderboard).content.decode()


def test_emails_stuck_in_the_outbox_show_instructors_a_banner_with_the_smtp_error(
    client, course, instructor, learner
):
    from server.outbox.models import OutboxEmail

    leaderboard = reverse("leaderboard", args=[course.code])
    _login(client, instructor)
    submission = make_submission(course, learner, status=Status.SCORED)
    email = OutboxEmail.objects.create(
        submission=submission, generation=1, kind="result", to=learner.email, attempts=3,
        last_error="SMTPAuthenticationError: 535 bad credentials",
    )  # fmt: skip
    assert 'data-testid="email-banner"' not in client.get(leaderboard).content.decode()

    OutboxEmail.objects.filter(pk=email.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=20)
    )
    page = client.get(leaderboard).content.decode()
    assert 'data-testid="email-banner"' in page
    assert "535 bad credentials" in page
    assert "1 email (results, invitations or password-reset links) is waiting" in page


def test_the_submission_browser_filters_by_learner_and_status(
    client, course, instructor, learner, other_learner
):
    mine = make_submission(course, learner, status=Status.FAILED, error_class="time_limit")
    make_submission(course, learner, accuracy=0.9)
    make_submission(course, other_learner, status=Status.FAILED, error_class="time_limit")
    url = reverse("course_submissions", args=[course.code])
    response = _login(client, instructor).get(url, {"learner": learner.pk, "status": "failed"})
    assert [s.pk for s in response.context["page"]] == [mine.pk]
    assert len(client.get(url).context["page"]) == 3


def test_an_instructor_sees_logs_and_run_details_of_a_learners_submission(
    client, course, instructor, learner
):
    failed = make_submission(
        course,
        learner,
        status=Status.FAILED,
        error_class="learner_exception",
        error_message="boom",
        detail="Traceback (most recent call last)",
        log_excerpt="stdout here",
    )
    page = _login(client, instructor).get(reverse("submission_detail", args=[failed.pk]))
    html = page.content.decode()
    assert "Traceback (most recent call last)" in html and "stdout here" in html
    assert 'data-testid="rescore"' in html
