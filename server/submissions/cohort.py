"""The cohort as a whole, for instructors: who has passed by when, and what the class confuses.

Reads only; every score here obeys the one pass rule (``SubmissionQuerySet.counting``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Min

from scorer.metrics import CLASS_NAMES, N_CLASSES
from server.courses.models import Course, Enrollment, Role
from server.submissions.models import Status, Submission


@dataclass(frozen=True)
class PassShare:
    day: dt.date
    passed: int
    learners: int

    @property
    def share(self) -> float:
        return self.passed / self.learners if self.learners else 0.0


@dataclass(frozen=True)
class Confusion:
    true_label: str
    predicted_label: str
    count: int
    # Of all the cohort's best-submission answers for images of the true class.
    share: float

    @property
    def percent(self) -> str:
        return f"{self.share:.1%}"


def pass_share_by_day(
    course: Course, today: dt.date | None = None, *, learners: int | None = None
) -> list[PassShare]:
    """Per course day, from the first scored upload to today: how many learners had a
    counting score at or above the threshold by the end of that day. ``learners``: the
    number enrolled, when the caller already knows it (the leaderboard has one row each)."""
    if learners is None:
        learners = Enrollment.objects.filter(course=course, role=Role.LEARNER).count()
    reached = (
        Submission.objects.filter(
            course=course,
            status=Status.SCORED,
            learner__enrollments__course=course,
            learner__enrollments__role=Role.LEARNER,
            accuracy__gte=course.pass_threshold,
        )
        .counting()
        .values("learner")
        .annotate(first=Min("created_at"))
        .values_list("first", flat=True)
    )
    first_scored = Submission.objects.filter(course=course, status=Status.SCORED).aggregate(
        first=Min("created_at")
    )["first"]
    if first_scored is None:
        return []
    zone = course.tz
    passed_on = sorted(moment.astimezone(zone).date() for moment in reached)
    start = first_scored.astimezone(zone).date()
    end = today or dt.datetime.now(zone).date()
    days, index, passed = [], 0, 0
    day = start
    while day <= end:
        while index < len(passed_on) and passed_on[index] <= day:
            index, passed = index + 1, passed + 1
        days.append(PassShare(day, passed, learners))
        day += dt.timedelta(days=1)
    return days


def cohort_confusion(course: Course) -> list[list[int]] | None:
    """The confusion matrices of every learner's best counting submission, summed."""
    best = {}
    rows = (
        Submission.objects.filter(course=course, status=Status.SCORED, metrics__isnull=False)
        .counting()
        .order_by("learner_id", "-accuracy", "created_at")
        .values_list("learner_id", "metrics")
    )
    for learner_id, metrics in rows:
        if learner_id not in best and isinstance(metrics, dict) and metrics.get("confusion"):
            best[learner_id] = metrics["confusion"]
    if not best:
        return None
    total = [[0] * N_CLASSES for _ in range(N_CLASSES)]
    for matrix in best.values():
        for i, row in enumerate(matrix[:N_CLASSES]):
            for j, count in enumerate(row[:N_CLASSES]):
                total[i][j] += int(count)
    return total


def most_confused(confusion: list[list[int]], limit: int = 5) -> list[Confusion]:
    """The off-diagonal cells with the largest share of their true class."""
    cells = []
    for i, row in enumerate(confusion):
        support = sum(row) or 1
        for j, count in enumerate(row):
            if i != j and count:
                cells.append(Confusion(CLASS_NAMES[i], CLASS_NAMES[j], count, count / support))
    return sorted(cells, key=lambda c: (-c.share, -c.count))[:limit]
