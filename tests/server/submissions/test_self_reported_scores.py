"""A self-reported score is marked, and judged by the course's pass rule, wherever a learner
sees it: the result page, the live status, the course page, the email (text and HTML, in
Japanese and English) and the API."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from server.accounts.tokens import api_token_create
from server.courses.models import Course
from server.outbox.models import EmailKind, OutboxEmail
from server.outbox.services import build_message
from server.submissions.models import Submission
from tests.factories import make_submission


def _login(client, user, language: str = "en"):  # type: ignore[no-untyped-def]
    user.language = language
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def _count_self_reported(course: Course) -> None:
    course.self_reported_counts = True
    course.save(update_fields=["self_reported_counts"])


def _email(submission: Submission, language: str) -> tuple[str, str, str]:
    """Subject, text and HTML of the submission's result email, in ``language``."""
    submission.learner.language = language
    submission.learner.save(update_fields=["language"])
    row = OutboxEmail.objects.create(
        submission=submission,
        generation=submission.generation,
        kind=EmailKind.RESULT,
        to=submission.learner.email,
    )
    message = build_message(row)
    return message.subject, message.body, str(message.alternatives[0][0])


# --- result page -------------------------------------------------------------------------


def test_a_self_reported_score_above_the_threshold_is_not_counted_by_default(
    client, course, learner
):
    reported = make_submission(course, learner, accuracy=0.999, self_reported=True)
    page = _login(client, learner).get(reverse("submission_detail", args=[reported.pk]))
    html = page.content.decode()
    assert 'data-verdict="not_counted"' in html
    assert "Not counted toward the threshold: self-reported scores do not count" in html
    assert 'data-testid="self-reported"' in html
    assert "Passed (threshold" not in html


def test_a_self_reported_score_passes_where_the_course_counts_it_and_stays_marked(
    client, course, learner
):
    _count_self_reported(course)
    reported = make_submission(course, learner, accuracy=0.999, self_reported=True)
    html = _login(client, learner).get(reverse("submission_detail", args=[reported.pk]))
    html = html.content.decode()
    assert 'data-verdict="passed"' in html and "Passed (threshold 0.98)" in html
    assert 'data-testid="self-reported"' in html


def test_an_untrusted_score_never_passes(client, course, learner):
    _count_self_reported(course)
    flagged = make_submission(course, learner, accuracy=0.999, self_reported=True, untrusted=True)
    html = _login(client, learner).get(reverse("submission_detail", args=[flagged.pk]))
    html = html.content.decode()
    assert 'data-verdict="not_counted"' in html
    assert "flagged as untrusted" in html and 'data-testid="untrusted"' in html


def test_the_verdict_speaks_japanese(client, course, learner):
    reported = make_submission(course, learner, accuracy=0.999, self_reported=True)
    html = _login(client, learner, "ja").get(reverse("submission_detail", args=[reported.pk]))
    assert "自己申告のスコアは基準値の判定に数えません" in html.content.decode()


def test_the_live_status_and_the_course_page_mark_a_self_reported_score(client, course, learner):
    reported = make_submission(course, learner, accuracy=0.999, self_reported=True)
    status = _login(client, learner).get(reverse("submission_status", args=[reported.pk])).json()
    assert (status["verdict"], status["passed"], status["self_reported"]) == (
        "not_counted",
        False,
        True,
    )
    assert status["score_note"] == "self-reported"
    page = client.get(reverse("course", args=[course.code])).content.decode()
    row = page[page.index('data-testid="my-submissions"') :]
    assert 'data-testid="self-reported">self-reported</span>' in row
    assert '<span class="pass">✓</span>' not in row
    history = page[page.index('data-testid="history-chart"') :]
    history = history[: history.index("</svg>")]
    assert 'data-self-reported="1"' in history and "(self-reported)</title>" in history


def test_a_trusted_score_carries_no_self_reported_mark(client, course, learner):
    trusted = make_submission(course, learner, accuracy=0.99)
    status = _login(client, learner).get(reverse("submission_status", args=[trusted.pk])).json()
    assert (status["verdict"], status["score_note"]) == ("passed", "")
    html = client.get(reverse("submission_detail", args=[trusted.pk])).content.decode()
    assert 'data-testid="self-reported"' not in html


# --- email -------------------------------------------------------------------------------


def test_the_result_email_marks_a_self_reported_score_that_does_not_count(course, learner):
    reported = make_submission(course, learner, accuracy=0.999, self_reported=True)
    subject, text, html = _email(reported, "en")
    assert subject == "[dl_test_2026] Your score: 0.9990 (self-reported)"
    assert "Result: Not counted toward the threshold: self-reported scores do not count" in text
    assert "is marked as self-reported." in text
    assert "Not counted toward the threshold" in html and "is marked as self-reported." in html
    # The text part is plain text: no HTML escapes.
    assert "&#" not in text and "&amp;" not in text


def test_the_result_email_says_passed_for_a_counted_self_reported_score(course, learner):
    _count_self_reported(course)
    reported = make_submission(course, learner, accuracy=0.999, self_reported=True)
    subject, text, html = _email(reported, "en")
    assert subject == "[dl_test_2026] Your score: 0.9990 (passed)"
    assert "Result: Passed (threshold 0.98)" in text and "Passed (threshold 0.98)" in html
    assert "is marked as self-reported." in text and "is marked as self-reported." in html


def test_the_result_email_flags_an_untrusted_score(course, learner):
    flagged = make_submission(course, learner, accuracy=0.999, self_reported=True, untrusted=True)
    _subject, text, html = _email(flagged, "en")
    for part in (text, html):
        assert "flagged as untrusted" in part
        assert "the instructors will review this score" in part


def test_the_result_email_marks_a_self_reported_score_in_japanese(course, learner):
    reported = make_submission(course, learner, accuracy=0.999, self_reported=True)
    subject, text, html = _email(reported, "ja")
    assert subject.endswith("（自己申告）") or "(自己申告)" in subject
    for part in (text, html):
        assert "自己申告のスコアは基準値の判定に数えません" in part
        assert "自己申告として扱" in part


def test_the_result_email_of_a_trusted_pass_is_unchanged(course, learner):
    trusted = make_submission(course, learner, accuracy=0.99)
    subject, text, html = _email(trusted, "en")
    assert subject == "[dl_test_2026] Your score: 0.9900 (passed)"
    assert "Result: Passed (threshold 0.98)" in text
    assert "self-reported" not in text and "self-reported" not in html


# --- API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "counts", "expected"),
    [
        ({}, False, (False, False, "passed", True)),
        ({"self_reported": True}, False, (True, False, "not_counted", False)),
        ({"self_reported": True}, True, (True, False, "passed", True)),
        ({"self_reported": True, "untrusted": True}, True, (True, True, "not_counted", False)),
    ],
    ids=["trusted", "self-reported", "self-reported-counted", "untrusted"],
)
def test_the_api_marks_self_reported_scores_and_applies_the_pass_rule(
    course, learner, fields, counts, expected
):
    if counts:
        _count_self_reported(course)
    submission = make_submission(course, learner, accuracy=0.999, **fields)
    token = api_token_create(user=learner, name="t")[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    detail = api.get(reverse("api:submission", args=[submission.pk])).json()
    (listed,) = api.get(reverse("api:submissions")).json()["submissions"]
    for payload in (detail, listed):
        got = (
            payload["self_reported"],
            payload["untrusted"],
            payload["verdict"],
            payload["passed"],
        )
        assert got == expected


# --- trusted legacy scores -----------------------------------------------------------------


def test_a_recorded_legacy_score_passes_and_says_how_it_was_scored(client, course, learner):
    recorded = make_submission(course, learner, accuracy=0.99, contract="legacy")
    html = _login(client, learner).get(reverse("submission_detail", args=[recorded.pk]))
    text = html.content.decode()
    assert 'data-verdict="passed"' in text
    assert 'data-testid="legacy-recorded"' in text and "The loss is not shown" in text
    assert 'data-testid="self-reported"' not in text
    # A labelled (self-reported) legacy run has no such note: it was not recorded.
    reported = make_submission(
        course, learner, accuracy=0.99, contract="legacy", self_reported=True
    )
    text = client.get(reverse("submission_detail", args=[reported.pk])).content.decode()
    assert 'data-testid="legacy-recorded"' not in text
