"""The pass rule, on PostgreSQL: a score counts toward the pass mark (基準値) only if it is
not untrusted and, when self-reported, its course lets self-reported scores count.

Both forms of the rule (``Submission.objects.counting()`` for lists, ``counts_toward_pass``
and ``verdict`` for one loaded row) are checked against the same truth table, and each
reader (leaderboard, pass count, history chart) against the rule.
"""

from __future__ import annotations

import itertools

import pytest

from server.courses.models import Course
from server.submissions import selectors
from server.submissions.models import Submission, Verdict, counting_filter
from tests.factories import make_submission

# (untrusted, self_reported, course.self_reported_counts) -> counts
TRUTH = {
    (False, False, False): True,
    (False, False, True): True,
    (False, True, False): False,
    (False, True, True): True,
    (True, False, False): False,
    (True, False, True): False,
    (True, True, False): False,
    (True, True, True): False,
}


def _allow_self_reported(course: Course, allowed: bool = True) -> None:
    course.self_reported_counts = allowed
    course.save(update_fields=["self_reported_counts"])


@pytest.mark.parametrize("counts_in_course", [False, True], ids=["default", "opted-in"])
def test_the_sql_and_python_forms_of_the_rule_agree_with_the_truth_table(
    course, learner, counts_in_course
):
    _allow_self_reported(course, counts_in_course)
    made = {
        (untrusted, self_reported): make_submission(
            course, learner, accuracy=0.99, untrusted=untrusted, self_reported=self_reported
        ).pk
        for untrusted, self_reported in itertools.product([False, True], repeat=2)
    }
    in_sql = set(Submission.objects.counting().values_list("pk", flat=True))
    # The leaderboard's form: the course's setting read once instead of joined per row.
    for_course = Submission.objects.filter(counting_filter(course=course))
    in_course_sql = set(for_course.values_list("pk", flat=True))
    for (untrusted, self_reported), pk in made.items():
        expected = TRUTH[(untrusted, self_reported, counts_in_course)]
        loaded = Submission.objects.select_related("course").get(pk=pk)
        assert loaded.counts_toward_pass is expected, (untrusted, self_reported)
        assert (pk in in_sql) is expected, (untrusted, self_reported)
        assert (pk in in_course_sql) is expected, (untrusted, self_reported)


def test_the_verdict_is_passed_below_or_not_counted(course, learner):
    trusted_pass = make_submission(course, learner, accuracy=0.985)
    trusted_below = make_submission(course, learner, accuracy=0.95)
    reported = make_submission(course, learner, accuracy=0.999, self_reported=True)
    untrusted = make_submission(course, learner, accuracy=0.999, self_reported=True, untrusted=True)
    assert [s.verdict for s in (trusted_pass, trusted_below, reported, untrusted)] == [
        Verdict.PASSED,
        Verdict.BELOW,
        Verdict.NOT_COUNTED,
        Verdict.NOT_COUNTED,
    ]
    assert [s.passed for s in (trusted_pass, trusted_below, reported, untrusted)] == [
        True,
        False,
        False,
        False,
    ]
    _allow_self_reported(course)
    reported.refresh_from_db()
    untrusted.refresh_from_db()
    assert (reported.verdict, reported.passed) == (Verdict.PASSED, True)
    assert (untrusted.verdict, untrusted.passed) == (Verdict.NOT_COUNTED, False)


def test_a_submission_without_a_score_has_no_verdict(course, learner):
    failed = make_submission(course, learner, status="failed", error_class="time_limit")
    assert (failed.verdict, failed.passed) == (None, None)


def test_a_self_reported_score_is_not_a_learners_best_unless_the_course_counts_it(
    course, learner, other_learner
):
    make_submission(course, learner, accuracy=0.95)
    make_submission(course, learner, accuracy=0.999, self_reported=True)
    make_submission(course, other_learner, accuracy=0.999, self_reported=True, untrusted=True)

    first, second = selectors.leaderboard(course)
    assert (first.email, first.best_accuracy, first.best_self_reported, first.passed) == (
        "learner@example.com",
        0.95,
        False,
        False,
    )
    # The latest score still shows, marked.
    assert (first.latest_accuracy, first.latest_self_reported, first.latest_untrusted) == (
        0.999,
        True,
        False,
    )
    assert (second.best_accuracy, second.passed, second.latest_untrusted) == (None, False, True)

    _allow_self_reported(course)
    first, second = selectors.leaderboard(course)
    assert (first.best_accuracy, first.best_self_reported, first.passed) == (0.999, True, True)
    # Untrusted never counts, whatever the course allows.
    assert (second.best_accuracy, second.passed) == (None, False)


def test_the_learners_history_says_which_scores_count(course, learner):
    make_submission(course, learner, accuracy=0.99)
    make_submission(course, learner, accuracy=0.995, self_reported=True)
    points = selectors.accuracy_history(learner.pk, course)
    assert [(p.self_reported, p.counts) for p in points] == [(False, True), (True, False)]


def test_new_courses_neither_run_legacy_with_labels_nor_count_self_reported_scores(course):
    assert (course.legacy_labelled_allowed, course.self_reported_counts) == (False, False)
