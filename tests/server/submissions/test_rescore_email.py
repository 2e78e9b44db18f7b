"""A rescore's email says it is a rescore and what changed; the run detail stays readable."""

from __future__ import annotations

from scorer.errors import ErrorClass, ScoringError
from scorer.pipeline import ScoreOutcome
from server.outbox.models import OutboxEmail
from server.outbox.services import build_message
from server.submissions import lifecycle
from server.submissions.models import Status, Submission
from tests.factories import make_submission


def _rescore_with(submission: Submission, outcome: ScoreOutcome) -> OutboxEmail:
    assert lifecycle.submission_rescore(submission)
    # What the worker's claim does, for this one row.
    Submission.objects.filter(pk=submission.pk).update(status=Status.RUNNING, attempts=1)
    submission.refresh_from_db()
    assert lifecycle.submission_record_outcome(submission, outcome)
    return OutboxEmail.objects.get(submission=submission, generation=submission.generation)


def test_a_rescore_email_says_so_and_gives_the_accuracy_before_and_now(course, learner):  # type: ignore[no-untyped-def]
    learner.language = "en"
    learner.save(update_fields=["language"])
    submission = make_submission(course, learner, accuracy=0.9712)

    row = _rescore_with(submission, ScoreOutcome(status="scored", accuracy=0.98))

    assert row.previous_accuracy == 0.9712
    message = build_message(row)
    assert "Rescored" in message.subject
    assert "This is a rescore" in message.body
    assert "Accuracy before the rescore: 0.9712, now: 0.9800 (+0.0088)." in message.body
    assert "0.9712" in str(message.alternatives[0][0])


def test_a_rescore_that_fails_says_what_the_score_was(course, learner):  # type: ignore[no-untyped-def]
    learner.language = "ja"
    learner.save(update_fields=["language"])
    submission = make_submission(course, learner, accuracy=0.95)
    error = ScoringError(ErrorClass.TIME_LIMIT, "time_limit", "too slow")

    row = _rescore_with(submission, ScoreOutcome(status="failed", error=error))

    message = build_message(row)
    assert "再採点" in message.subject
    assert "0.9500" in message.body and "再採点" in message.body


def test_a_first_result_email_does_not_mention_a_rescore(course, learner):  # type: ignore[no-untyped-def]
    learner.language = "en"
    learner.save(update_fields=["language"])
    submission = make_submission(course, learner, status=Status.RUNNING, attempts=1)
    assert lifecycle.submission_record_outcome(
        submission, ScoreOutcome(status="scored", accuracy=0.99)
    )
    row = OutboxEmail.objects.get(submission=submission)
    message = build_message(row)
    assert row.previous_accuracy is None
    assert "rescore" not in message.body.lower() and "Rescored" not in message.subject


def test_the_run_detail_keeps_the_traceback_and_the_notes_on_their_own_lines(course, learner):  # type: ignore[no-untyped-def]
    submission = make_submission(course, learner, status=Status.RUNNING, attempts=1)
    error = ScoringError(
        ErrorClass.LEARNER_EXCEPTION,
        "exception",
        "msg",
        detail="FileNotFoundError: 'model_missing.npy'",
    )
    outcome = ScoreOutcome(status="failed", error=error, notes=["entry: submit_katakana.ipynb"])

    assert lifecycle.submission_record_outcome(submission, outcome)

    submission.refresh_from_db()
    assert submission.detail.splitlines() == [
        "FileNotFoundError: 'model_missing.npy'",
        "entry: submit_katakana.ipynb",
    ]
