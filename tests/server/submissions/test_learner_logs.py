"""Text a run of learner code chose (``detail``: the traceback tail and run notes,
``log_excerpt``: what it printed) reaches the learner only where the course shows logs:
never through the result page, its live fragment and status, the course page, the email or
the API while logs are off. Instructors always see both on the result page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from server.accounts.tokens import api_token_create
from server.courses.models import Course
from server.outbox.models import EmailKind, OutboxEmail
from server.outbox.services import build_message
from server.submissions.models import Status, Submission
from tests.factories import make_submission

DETAIL = "Traceback: label-7f3a leaked through detail"
LOG = "printed-9c1e 0 0 255 leaked through the log"
MARKERS = ("label-7f3a", "printed-9c1e")


def _login(client, user):  # type: ignore[no-untyped-def]
    user.language = "en"
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def _show_logs(course: Course, shown: bool) -> None:
    course.show_logs_to_learners = shown
    course.save(update_fields=["show_logs_to_learners"])


def _runs(course, learner) -> list[Submission]:  # type: ignore[no-untyped-def]
    """A failed and a scored run, both carrying text the learner's code chose."""
    return [
        make_submission(
            course,
            learner,
            status=Status.FAILED,
            error_class="learner_exception",
            error_code="exception",
            error_message="Your code raised an exception.",
            detail=DETAIL,
            log_excerpt=LOG,
        ),
        make_submission(course, learner, accuracy=0.9, detail=DETAIL, log_excerpt=LOG),
    ]


def _learner_pages(client: Client, submission: Submission) -> str:
    urls = [
        reverse("submission_detail", args=[submission.pk]),
        reverse("submission_result", args=[submission.pk]),
        reverse("submission_status", args=[submission.pk]),
        reverse("course", args=[submission.course.code]),
    ]
    return "\n".join(client.get(url).content.decode() for url in urls)


def test_learners_see_no_run_text_on_any_page_while_logs_are_off(client, course, learner):
    _login(client, learner)
    for submission in _runs(course, learner):
        pages = _learner_pages(client, submission)
        assert not [m for m in MARKERS if m in pages], submission.status


def test_learners_see_the_run_text_once_the_course_shows_logs(client, course, learner):
    failed, scored = _runs(course, learner)
    _show_logs(course, True)
    _login(client, learner)
    failed_page = client.get(reverse("submission_detail", args=[failed.pk])).content.decode()
    assert all(m in failed_page for m in MARKERS)
    scored_page = client.get(reverse("submission_detail", args=[scored.pk])).content.decode()
    assert "printed-9c1e" in scored_page


@pytest.mark.parametrize("shown", [False, True], ids=["logs-off", "logs-on"])
def test_instructors_always_see_the_run_text(client, course, learner, instructor, shown):
    _show_logs(course, shown)
    _login(client, instructor)
    for submission in _runs(course, learner):
        page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
        assert all(m in page for m in MARKERS), submission.status


@pytest.mark.parametrize("language", ["en", "ja"])
def test_no_email_carries_the_run_text_while_logs_are_off(course, learner, language):
    learner.language = language
    learner.save(update_fields=["language"])
    for submission in _runs(course, learner):
        kind = EmailKind.RESULT if submission.status == Status.SCORED else EmailKind.FAILURE
        row = OutboxEmail.objects.create(
            submission=submission, generation=submission.generation, kind=kind, to=learner.email
        )
        message = build_message(row)
        parts = [message.subject, str(message.body), str(message.alternatives[0][0])]
        assert parts[1].strip() and parts[2].strip()
        assert not [m for m in MARKERS for part in parts if m in part], submission.status


def test_the_api_carries_no_run_text_while_logs_are_off(course, learner):
    runs = _runs(course, learner)
    token = api_token_create(user=learner, name="t")[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    bodies = [api.get(reverse("api:submissions")).content.decode()]
    bodies += [api.get(reverse("api:submission", args=[s.pk])).content.decode() for s in runs]
    assert all('"status"' in body for body in bodies)
    assert not [m for m in MARKERS for body in bodies if m in body]
