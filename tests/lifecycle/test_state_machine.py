"""The state machine's rules, in-process on the real database (no worker needed).

Fair claims across learners, rescores after fresh uploads, a duplicate message that
claims nothing, a late result that changes nothing, the attempt cap with its refund, and
the back-off that keeps a retried submission unclaimable for a while.
"""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from django.utils import timezone

from scorer.errors import ErrorClass, ScoringError
from scorer.legacy import UNTRACED_CODE
from scorer.pipeline import ScoreOutcome
from server.ops import selectors as ops_selectors
from server.outbox.models import OutboxEmail
from server.submissions import lifecycle, selectors
from server.submissions.models import Status, Submission
from tests.conftest import _enrol


@pytest.fixture
def queue(course, settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_MAX_ATTEMPTS = 3
    settings.KATAKANA_RETRY_SECONDS = 30
    course.max_in_flight = 5
    course.save(update_fields=["max_in_flight"])
    start = timezone.now() - dt.timedelta(minutes=10)
    count = 0

    def add(learner, *, generation: int = 1) -> Submission:  # type: ignore[no-untyped-def]
        nonlocal count
        count += 1
        return Submission.objects.create(
            token=secrets.token_hex(16), course=course, learner=learner, original_name="s.zip",
            enqueued_at=start + dt.timedelta(seconds=count), generation=generation,
        )  # fmt: skip

    return add


def _claim(hint: int = 0) -> Submission | None:
    return lifecycle.submission_claim(hint, worker="test:1")


def test_a_learner_with_a_run_waits_behind_a_learner_without(course, queue) -> None:  # type: ignore[no-untyped-def]
    busy, other = (
        _enrol(course, "busy@example.com", "learner"),
        _enrol(course, "o@example.com", "learner"),
    )
    first, second, third = queue(busy), queue(busy), queue(busy)
    late = queue(other)
    assert _claim(first.pk) == first
    assert _claim(second.pk) == late  # busy has a run; other has none, though later
    assert _claim(late.pk) == second  # equal again: first come, first served
    assert _claim() == third
    assert _claim() is None  # a spare or duplicate message finds nothing to do


def test_the_position_a_learner_is_shown_is_the_order_work_is_claimed_in(course, queue) -> None:  # type: ignore[no-untyped-def]
    # It counted older uploads: a fresh upload shown "position 4" was claimed first.
    busy, other = (
        _enrol(course, "busy@example.com", "learner"),
        _enrol(course, "o@example.com", "learner"),
    )
    rescore = queue(other, generation=2)
    first, second, third = queue(busy), queue(busy), queue(busy)
    late = queue(other)
    assert _claim(first.pk) == first
    waiting = [rescore, second, third, late]
    shown = {s.pk: selectors.queue_position(Submission.objects.get(pk=s.pk)) for s in waiting}
    assert shown[late.pk] == 1 and shown[rescore.pk] == 4
    claimed = []
    while (next_one := _claim()) is not None:
        claimed.append(next_one.pk)
        Submission.objects.filter(pk=next_one.pk).update(status=Status.SCORED)
    assert claimed == sorted(shown, key=lambda pk: shown[pk])


def test_the_queue_wait_counts_uploads_not_rescores_of_old_rows(course, queue, learner) -> None:  # type: ignore[no-untyped-def]
    old = queue(learner, generation=2)
    Submission.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=7))
    assert selectors.queue_health().oldest_wait_seconds < 60
    assert ops_selectors.queue_stats().oldest_queued_age_seconds is None
    fresh = queue(learner)  # a fresh upload does count
    Submission.objects.filter(pk=fresh.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )
    assert 295 <= selectors.queue_health().oldest_wait_seconds <= 310
    assert 295 <= (ops_selectors.queue_stats().oldest_queued_age_seconds or 0) <= 310


def test_one_learners_burst_takes_turns_with_the_others(course, queue) -> None:  # type: ignore[no-untyped-def]
    a, b = _enrol(course, "a@example.com", "learner"), _enrol(course, "b@example.com", "learner")
    burst = [queue(a) for _ in range(3)]
    others = [queue(b) for _ in range(3)]
    order = []
    while (claimed := _claim()) is not None:  # one worker: each run ends before the next
        order.append(claimed)
        Submission.objects.filter(pk=claimed.pk).update(status=Status.SCORED)
    assert order == [burst[0], others[0], burst[1], others[1], burst[2], others[2]]


def test_rescores_wait_behind_fresh_uploads(course, queue) -> None:  # type: ignore[no-untyped-def]
    a, b = _enrol(course, "a@example.com", "learner"), _enrol(course, "b@example.com", "learner")
    rescore = queue(a, generation=2)
    fresh = queue(b)
    assert _claim(rescore.pk) == fresh
    assert _claim() == rescore


def test_the_message_hint_wins_among_equals(course, queue, learner, other_learner) -> None:  # type: ignore[no-untyped-def]
    older, newer = queue(learner), queue(other_learner)
    assert _claim(newer.pk) == newer
    assert _claim(older.pk) == older


def test_a_late_result_of_a_given_away_attempt_changes_nothing(course, queue, learner) -> None:  # type: ignore[no-untyped-def]
    queue(learner)
    stale = _claim()
    assert stale is not None
    assert (
        lifecycle.submission_record_infrastructure_failure(stale, "lease expired") == Status.QUEUED
    )
    Submission.objects.filter(pk=stale.pk).update(lease_until=None)  # back-off over
    current = _claim()
    assert current is not None and current.attempts == 2
    assert not lifecycle.submission_record_outcome(
        stale, ScoreOutcome(status="scored", accuracy=0.5)
    )
    assert lifecycle.submission_record_outcome(current, ScoreOutcome(status="scored", accuracy=0.9))
    assert not lifecycle.submission_record_outcome(current, ScoreOutcome(status="failed"))  # twice
    current.refresh_from_db()
    assert (current.status, current.accuracy, current.charged) == (Status.SCORED, 0.9, True)
    assert OutboxEmail.objects.filter(submission=current).count() == 1


def test_a_legacy_zip_the_stand_in_cannot_follow_fails_at_once_and_is_refunded(
    course, queue, learner
) -> None:  # type: ignore[no-untyped-def]
    queue(learner)
    claimed = _claim()
    assert claimed is not None
    error = ScoringError(ErrorClass.LEGACY_UNTRACEABLE, UNTRACED_CODE, "msg")
    assert lifecycle.submission_record_outcome(claimed, ScoreOutcome(status="failed", error=error))
    claimed.refresh_from_db()
    # A final verdict (no retry) that does not use up the learner's slot.
    assert (claimed.status, claimed.charged, claimed.attempts) == (Status.FAILED, False, 1)
    assert _claim() is None
    # A learner's own error in the same place is charged, so the check can fail.
    queue(learner)
    other = _claim()
    assert other is not None
    crash = ScoringError(ErrorClass.LEARNER_EXCEPTION, "exception", "msg")
    lifecycle.submission_record_outcome(other, ScoreOutcome(status="failed", error=crash))
    other.refresh_from_db()
    assert (other.status, other.charged) == (Status.FAILED, True)


def test_infrastructure_faults_back_off_then_end_refunded_at_the_cap(
    course, queue, learner
) -> None:  # type: ignore[no-untyped-def]
    submission = queue(learner)
    for attempt in (1, 2):
        claimed = _claim()
        assert claimed is not None and claimed.attempts == attempt
        assert (
            lifecycle.submission_record_infrastructure_failure(claimed, "engine") == Status.QUEUED
        )
        claimed.refresh_from_db()
        wait = (claimed.lease_until - timezone.now()).total_seconds()
        assert 30 * 2 ** (attempt - 1) - 2 < wait <= 30 * 2 ** (attempt - 1)
        assert _claim() is None  # backing off: not claimable yet
        Submission.objects.filter(pk=submission.pk).update(lease_until=timezone.now())
    last = _claim()
    assert last is not None and last.attempts == 3
    assert lifecycle.submission_record_infrastructure_failure(last, "engine") == Status.ERROR
    last.refresh_from_db()
    assert (last.status, last.charged, last.error_class) == (Status.ERROR, False, "infrastructure")
    assert _claim() is None
    assert OutboxEmail.objects.filter(submission=last).count() == 1


def test_an_expired_lease_is_requeued_by_the_sweeper_not_stolen_by_a_claim(
    course, queue, learner
) -> None:  # type: ignore[no-untyped-def]
    from server.submissions.sweeper import sweep

    queue(learner)
    claimed = _claim()
    assert claimed is not None
    Submission.objects.filter(pk=claimed.pk).update(
        lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert _claim() is None  # only the sweeper turns an expired RUNNING row back to QUEUED
    report = sweep(reap=False)
    assert report.reclaimed == 1
    claimed.refresh_from_db()
    assert claimed.status == Status.QUEUED and claimed.attempts == 1
