"""The instructor's view of the cohort: who has passed by when, and what the class confuses."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from server.submissions import cohort
from tests.factories import make_submission, real_metrics


def test_the_pass_share_counts_each_learner_once_from_the_day_they_passed(
    course, learner, other_learner
):
    course.pass_threshold = 0.95
    course.save(update_fields=["pass_threshold"])
    zone = course.tz
    today = timezone.now().astimezone(zone).date()
    days_ago = lambda n: timezone.now() - dt.timedelta(days=n)  # noqa: E731
    make_submission(course, learner, accuracy=0.90, created_at=days_ago(3))
    make_submission(course, learner, accuracy=0.96, created_at=days_ago(2))
    make_submission(course, learner, accuracy=0.97, created_at=days_ago(1))  # passed already
    # A self-reported pass does not count (the course's default).
    make_submission(
        course, other_learner, accuracy=0.99, self_reported=True, created_at=days_ago(1)
    )
    shares = cohort.pass_share_by_day(course, today=today)
    assert [s.day for s in shares] == [today - dt.timedelta(days=n) for n in (3, 2, 1, 0)]
    assert [s.passed for s in shares] == [0, 1, 1, 1]
    assert shares[-1].learners == 2 and shares[-1].share == 0.5


def test_the_cohort_confusion_adds_up_each_learners_best_counting_submission(
    course, learner, other_learner
):
    best = make_submission(course, learner, accuracy=0.9, metrics=real_metrics(0.9, seed=1))
    make_submission(course, learner, accuracy=0.5, metrics=real_metrics(0.5, seed=2))  # not best
    theirs = make_submission(course, other_learner, accuracy=0.8, metrics=real_metrics(0.8, seed=3))
    total = cohort.cohort_confusion(course)
    assert total is not None
    expected = [
        [a + b for a, b in zip(r1, r2, strict=True)]
        for r1, r2 in zip(best.metrics["confusion"], theirs.metrics["confusion"], strict=True)
    ]
    assert total == expected
    worst = cohort.most_confused(total, limit=3)
    assert len(worst) == 3 and worst[0].share >= worst[1].share >= worst[2].share
    assert all(c.true_label != c.predicted_label for c in worst)


def test_the_cohort_tab_shows_the_cohort_to_instructors(client, course, instructor, learner):
    make_submission(course, learner, accuracy=0.99, metrics=real_metrics(0.99))
    client.force_login(instructor)
    page = client.get(reverse("course_cohort", args=[course.code])).content.decode()
    assert 'data-testid="cohort"' in page
    assert 'data-testid="pass-share-chart"' in page and 'data-testid="confusion-heatmap"' in page


def test_an_empty_course_shows_no_cohort_section(client, course, instructor):
    client.force_login(instructor)
    page = client.get(reverse("course_cohort", args=[course.code])).content.decode()
    assert 'data-testid="cohort"' not in page and 'data-testid="cohort-empty"' in page
