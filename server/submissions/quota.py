"""The daily submission quota, counted per course day in the course's time zone.

Only charged submissions count: uploads rejected at intake and infrastructure failures
are never charged. Callers hold a row lock on the learner's enrollment while they count
and insert, so parallel uploads can never exceed the quota.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Sum
from django.utils import timezone

from server.courses.models import Course, Enrollment
from server.submissions.models import Submission


@dataclass(frozen=True)
class QuotaState:
    used: int
    limit: int
    resets_at: dt.datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def seconds_to_reset(self) -> int:
        return max(0, int((self.resets_at - timezone.now()).total_seconds()))

    @property
    def hours_to_reset(self) -> int:
        return self.seconds_to_reset // 3600

    @property
    def minutes_to_reset(self) -> int:
        return self.seconds_to_reset % 3600 // 60


def quota_state(enrollment: Enrollment, now: dt.datetime | None = None) -> QuotaState:
    course: Course = enrollment.course
    start, end = course.day_bounds(now)
    used = (
        Submission.objects.charged()
        .filter(course=course, learner=enrollment.user, created_at__gte=start, created_at__lt=end)
        .count()
    )
    extra = enrollment.grants.filter(day=start.date()).aggregate(total=Sum("extra"))["total"] or 0
    return QuotaState(used=used, limit=course.daily_quota + extra, resets_at=end)
