"""The operator commands: create_course, rescore, purge_artefacts, verify_testsets."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from server.courses.models import Course, Enrollment
from server.submissions.models import Status, Submission
from server.submissions.quota import quota_state


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- create_course ---------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_a_course_with_the_given_quota_threshold_and_contract() -> None:
    run(
        "create_course",
        "dl_osaka_2027",
        "大阪講座",
        "--quota",
        "5",
        "--threshold",
        "0.95",
        "--no-legacy",
    )
    course = Course.objects.get(code="dl_osaka_2027")
    assert (course.name, course.daily_quota, course.pass_threshold, course.legacy_allowed) == (
        "大阪講座",
        5,
        0.95,
        False,
    )


@pytest.mark.django_db
def test_rerunning_create_course_changes_only_the_options_given() -> None:
    run("create_course", "dl_osaka_2027", "大阪講座", "--quota", "5", "--threshold", "0.95")
    out = run("create_course", "dl_osaka_2027", "大阪講座 2027", "--legacy")
    course = Course.objects.get(code="dl_osaka_2027")
    assert "Updated" in out
    assert (course.name, course.daily_quota, course.pass_threshold, course.legacy_allowed) == (
        "大阪講座 2027",
        5,
        0.95,
        True,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [["--threshold", "98"], ["--quota", "0"], []],
    ids=["threshold-as-percent", "zero-quota", "bad-slug"],
)
def test_it_refuses_an_invalid_course(args: list[str]) -> None:
    code = "not a slug!" if not args else "dl_ok"
    with pytest.raises(CommandError):
        run("create_course", code, "講座", *args)
    assert not Course.objects.exists()


@pytest.mark.django_db
def test_create_course_sets_and_keeps_the_self_reported_settings() -> None:
    out = run(
        "create_course", "dl_kyoto", "京都講座", "--legacy-labelled", "--self-reported-counts"
    )
    course = Course.objects.get(code="dl_kyoto")
    assert (course.legacy_labelled_allowed, course.self_reported_counts) == (True, True)
    assert "labelled self-reported runs allowed" in out
    assert "self-reported scores count" in out
    run("create_course", "dl_kyoto", "京都講座", "--quota", "4")
    course.refresh_from_db()
    assert (course.legacy_labelled_allowed, course.self_reported_counts) == (True, True)
    flags_off = ["--no-legacy-labelled", "--no-self-reported-counts"]
    run("create_course", "dl_kyoto", "京都講座", *flags_off)
    course.refresh_from_db()
    assert (course.legacy_labelled_allowed, course.self_reported_counts) == (False, False)


# --- rescore ------------------------------------------------------------------------


@pytest.mark.django_db
def test_rescoring_a_submission_queues_it_again_without_charging_the_quota(
    make_submission, learner, course, django_capture_on_commit_callbacks
) -> None:
    scored = make_submission(status=Status.SCORED, accuracy=0.97)
    enrollment = Enrollment.objects.get(user=learner, course=course)
    used_before = quota_state(enrollment).used
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        out = run("rescore", str(scored.pk))
    scored.refresh_from_db()
    assert f"#{scored.pk}" in out
    assert (scored.status, scored.generation, scored.attempts) == (Status.QUEUED, 2, 0)
    assert len(enqueued) == 1  # one scoring task, sent after commit
    assert quota_state(enrollment).used == used_before
    assert Submission.objects.count() == 1  # no new (charged) row


@pytest.mark.django_db
def test_rescoring_a_course_queues_finished_runs_only_and_skips_purged_zips(
    make_submission, course, django_capture_on_commit_callbacks
) -> None:
    scored = make_submission(status=Status.SCORED)
    failed = make_submission(status=Status.FAILED)
    errored = make_submission(status=Status.ERROR, charged=False)
    rejected = make_submission(status=Status.REJECTED, charged=False)
    running = make_submission(status=Status.RUNNING)
    purged = make_submission(status=Status.SCORED, with_zip=False)
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        run("rescore", "--course", course.code, "--all")
    status = dict(Submission.objects.values_list("pk", "status"))
    assert {status[s.pk] for s in (scored, failed, errored)} == {Status.QUEUED}
    assert status[rejected.pk] == Status.REJECTED
    assert status[running.pk] == Status.RUNNING
    assert status[purged.pk] == Status.SCORED
    assert len(enqueued) == 3
    errored.refresh_from_db()
    assert errored.charged is False  # a refunded run stays refunded


@pytest.mark.django_db
def test_rescore_dry_run_changes_nothing(make_submission, course) -> None:
    scored = make_submission(status=Status.SCORED)
    out = run("rescore", "--course", course.code, "--all", "--dry-run")
    scored.refresh_from_db()
    assert "Would queue 1" in out and scored.status == Status.SCORED


@pytest.mark.django_db
def test_rescore_needs_an_id_or_a_course_with_all(course) -> None:
    with pytest.raises(CommandError):
        run("rescore", "--course", course.code)
    with pytest.raises(CommandError):
        run("rescore", "999999")


# --- purge_artefacts ------------------------------------------------------------------


@pytest.mark.django_db
def test_purge_deletes_old_zips_and_keeps_rows_results_and_recent_zips(make_submission) -> None:
    old = make_submission(status=Status.SCORED, days_old=100, accuracy=0.991)
    old_path = Path(old.archive.path)
    old_running = make_submission(status=Status.RUNNING, days_old=100)
    recent = make_submission(status=Status.SCORED, days_old=5)
    out = run("purge_artefacts", "--older-than-days", "90")
    old.refresh_from_db()
    assert "Deleted 1 zip" in out
    assert not old_path.exists()
    assert old.archive.name == "" and old.accuracy == 0.991 and old.sha256 == "0" * 64
    assert Path(recent.archive.path).exists()
    assert Path(old_running.archive.path).exists()  # never under a run in flight


@pytest.mark.django_db
def test_purge_dry_run_deletes_nothing(make_submission) -> None:
    old = make_submission(status=Status.FAILED, days_old=100)
    out = run("purge_artefacts", "--older-than-days", "90", "--dry-run")
    old.refresh_from_db()
    assert "Would delete 1 zip" in out
    assert Path(old.archive.path).exists() and old.archive.name


@pytest.mark.django_db
def test_purge_twice_is_harmless_and_finds_nothing_the_second_time(make_submission) -> None:
    make_submission(status=Status.SCORED, days_old=100)
    run("purge_artefacts", "--older-than-days", "90")
    assert "Deleted 0 zip" in run("purge_artefacts", "--older-than-days", "90")


@pytest.mark.django_db
def test_purge_refuses_a_retention_under_one_day() -> None:
    with pytest.raises(CommandError):
        run("purge_artefacts", "--older-than-days", "0")


# --- verify_testsets -------------------------------------------------------------------


@pytest.mark.django_db
def test_verify_testsets_accepts_an_identical_copy_and_rejects_a_changed_byte(course) -> None:
    assert "ok " in run("verify_testsets")
    data = course.active_testset.path / "test_data.npy"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0x01
    data.write_bytes(bytes(raw))
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_testsets", stdout=out)
    assert exit_.value.code == 1
    assert "test_data.npy differs" in out.getvalue()


# --- resend_emails -----------------------------------------------------------------


@pytest.mark.django_db
def test_resend_emails_sends_what_the_outbox_gave_up_on_and_nothing_already_sent(  # type: ignore[no-untyped-def]
    make_submission, settings, eager_celery, django_capture_on_commit_callbacks
) -> None:
    from django.core import mail
    from django.utils import timezone

    from server.outbox.models import OutboxEmail

    ceiling = settings.KATAKANA_EMAIL_MAX_ATTEMPTS
    given_up = OutboxEmail.objects.create(
        submission=make_submission(), generation=1, kind="result", to="a@example.com",
        attempts=ceiling, last_error="SMTPAuthenticationError: 535",
    )  # fmt: skip
    sent = OutboxEmail.objects.create(
        submission=make_submission(), generation=1, kind="result", to="b@example.com",
        attempts=1, sent_at=timezone.now(),
    )  # fmt: skip
    opted_out = OutboxEmail.objects.create(
        submission=make_submission(), generation=1, kind="result", to="c@example.com",
        skipped=True,
    )  # fmt: skip

    assert run("resend_emails", "--dry-run") == "unsent emails: result 1\n"
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        assert "queued 1 email(s)" in run("resend_emails")

    assert [m.to for m in mail.outbox] == [["a@example.com"]]
    given_up.refresh_from_db()
    assert given_up.sent_at is not None and given_up.attempts == 1
    assert given_up.last_error == ""
    sent.refresh_from_db()
    opted_out.refresh_from_db()
    assert sent.attempts == 1 and opted_out.sent_at is None


@pytest.mark.django_db
def test_the_admin_action_sends_a_given_up_email_again(  # type: ignore[no-untyped-def]
    client, make_submission, settings, eager_celery, django_capture_on_commit_callbacks
) -> None:
    from django.core import mail
    from django.urls import reverse

    from server.accounts.models import User
    from server.outbox.models import OutboxEmail

    email = OutboxEmail.objects.create(
        submission=make_submission(), generation=1, kind="result", to="a@example.com",
        attempts=settings.KATAKANA_EMAIL_MAX_ATTEMPTS,
    )  # fmt: skip
    admin = User.objects.create_superuser(email="root@example.com", password="pw-root-2026")
    client.force_login(admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:outbox_outboxemail_changelist"),
            {"action": "send_again", "_selected_action": [email.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert [m.to for m in mail.outbox] == [["a@example.com"]]
