"""Reads for submissions and courses: what a page or an email needs, in few queries.

Access checks live here too: each returns the object or raises 404, so a learner never
learns that another learner's submission, or an instructor page, exists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from server.accounts.models import shown_name
from server.courses.models import Course, Enrollment, QuotaGrant, Role
from server.submissions.models import Status, Submission, counting_filter
from server.submissions.quota import QuotaState

# The queue counts as congested past either bound (shown as a banner on the pages).
CONGESTED_QUEUED = 20
CONGESTED_OLDEST_SECONDS = 10 * 60


def enrollment_for(user: Any, course: Course) -> Enrollment | None:
    if not user.is_authenticated:
        return None
    return Enrollment.objects.filter(user=user, course=course).first()


def is_instructor(user: Any, course: Course) -> bool:
    if user.is_superuser:
        return True
    enrollment = enrollment_for(user, course)
    return enrollment is not None and enrollment.role == Role.INSTRUCTOR


def course_for_member(user: Any, code: str) -> tuple[Course, Enrollment]:
    """The course and the user's enrollment in it; 404 for anyone not enrolled."""
    enrollment = (
        Enrollment.objects.select_related("course").filter(user=user, course__code=code).first()
        if user.is_authenticated
        else None
    )
    if enrollment is None:
        raise Http404
    return enrollment.course, enrollment


def course_for_instructor(user: Any, code: str) -> Course:
    """The course if the user teaches it (or is a superuser); 404 otherwise."""
    course = Course.objects.filter(code=code).first()
    if course is None or not user.is_authenticated or not is_instructor(user, course):
        raise Http404
    return course


def submission_for_user(user: Any, pk: int) -> Submission:
    """The submission if the user may see it; 404 otherwise (never reveal it exists)."""
    submission = (
        Submission.objects.select_related("course", "learner", "testset").filter(pk=pk).first()
    )
    if submission is None:
        raise Http404
    if submission.learner_id == user.pk or is_instructor(user, submission.course):
        return submission
    raise Http404


def queue_position(submission: Submission) -> int | None:
    """1 + how many queued rows a worker would claim before this one, as things stand."""
    if submission.status != Status.QUEUED:
        return None
    order = list(Submission.objects.in_claim_order().values_list("pk", flat=True))
    return order.index(submission.pk) + 1 if submission.pk in order else None


# ---------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class QueueHealth:
    queued: int
    running: int
    oldest_wait_seconds: int
    # Work has waited KATAKANA_SCORING_STALL_SECONDS with nothing moving: no worker can
    # score (engine unreachable, every worker gone) or the sweeper is not running.
    stalled: bool = False

    @property
    def congested(self) -> bool:
        return self.queued > CONGESTED_QUEUED or self.oldest_wait_seconds > CONGESTED_OLDEST_SECONDS

    @property
    def oldest_wait_minutes(self) -> int:
        return self.oldest_wait_seconds // 60


def queue_health() -> QueueHealth:
    """The scoring queue across all courses (one worker pool serves them all); two queries,
    a third only while an upload has waited past the stall window with no run in progress.
    """
    now = timezone.now()
    stall = dt.timedelta(seconds=settings.KATAKANA_SCORING_STALL_SECONDS)
    row = Submission.objects.in_flight().aggregate(
        queued=Count("pk", filter=Q(status=Status.QUEUED)),
        running=Count("pk", filter=Q(status=Status.RUNNING)),
        live=Count("pk", filter=Q(status=Status.RUNNING, lease_until__gt=now)),
        unreclaimed=Count("pk", filter=Q(status=Status.RUNNING, lease_until__lt=now - stall)),
    )
    oldest = Submission.objects.queued_uploads().aggregate(oldest=Min("created_at"))["oldest"]
    wait = int((now - oldest).total_seconds()) if oldest else 0
    return QueueHealth(
        queued=row["queued"],
        running=row["running"],
        oldest_wait_seconds=wait,
        stalled=scoring_stalled(
            now, oldest_wait_seconds=wait, live=row["live"], unreclaimed=row["unreclaimed"]
        ),
    )


def scoring_stalled(
    now: dt.datetime, *, oldest_wait_seconds: float, live: int, unreclaimed: int
) -> bool:
    """The one rule for "scoring is delayed": the banners, /healthz and /metrics use it.

    Stalled when an upload has waited longer than ``KATAKANA_SCORING_STALL_SECONDS`` and
    in that time no run held a live lease (``live``) and none finished (a long queue that
    moves is busy, not stalled), or when runs' leases expired that long ago and nobody
    reclaimed them (``unreclaimed``: the sweeper, that is beat, is not running).
    """
    stall = settings.KATAKANA_SCORING_STALL_SECONDS
    if unreclaimed:
        return True
    if oldest_wait_seconds <= stall or live:
        return False
    since = now - dt.timedelta(seconds=stall)
    return not Submission.objects.filter(finished_at__gt=since).exists()


# ---------------------------------------------------------------------------- quota line


def quota_line(state: QuotaState, course: Course, now: dt.datetime | None = None) -> str:
    """The quota line in the active language.

    In Japanese: 「本日の残り投稿回数 2/3 — 00:00 JST にリセット（あと 5時間12分）」.
    """
    now = now or timezone.now()
    left = max(0, int((state.resets_at - now).total_seconds()))
    hours, minutes = left // 3600, left % 3600 // 60
    if hours:
        duration = _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
    else:
        duration = _("%(minutes)d min") % {"minutes": minutes}
    zone = state.resets_at.astimezone(course.tz).strftime("%Z") or course.time_zone
    line = _(
        "Submissions left today: %(remaining)d/%(limit)d — "
        "resets at 00:00 %(zone)s (in %(duration)s)"
    )
    values = {"remaining": state.remaining, "limit": state.limit, "zone": zone}
    return line % {**values, "duration": duration}


# ---------------------------------------------------------------------------- learner


def learner_submissions(user: Any, course: Course, limit: int = 50) -> list[Submission]:
    return list(Submission.objects.for_learner(user).filter(course=course)[:limit])


@dataclass(frozen=True)
class HistoryPoint:
    pk: int
    created_at: dt.datetime
    accuracy: float
    self_reported: bool
    counts: bool


def accuracy_history(learner_id: int, course: Course) -> list[HistoryPoint]:
    """The learner's scored submissions in this course, oldest first."""
    rows = (
        Submission.objects.filter(course=course, learner_id=learner_id, status=Status.SCORED)
        .annotate(counts=ExpressionWrapper(counting_filter(), output_field=BooleanField()))
        .order_by("created_at")
        .values_list("pk", "created_at", "accuracy", "self_reported", "counts")
    )
    return [
        HistoryPoint(pk, created_at, accuracy, self_reported, counts)
        for pk, created_at, accuracy, self_reported, counts in rows
        if accuracy is not None
    ]


# ---------------------------------------------------------------------------- instructor


@dataclass(slots=True)
class LeaderboardRow:
    learner_id: int
    enrollment_id: int
    name: str
    email: str
    # The best score that counts toward the pass mark (``Submission.objects.counting``).
    best_accuracy: float | None
    best_submission_id: int | None
    best_self_reported: bool
    # When the best score was first reached: ties rank by it (Kaggle's rule).
    best_at: dt.datetime | None
    # The latest score, whether it counts or not.
    latest_accuracy: float | None
    latest_submission_id: int | None
    latest_self_reported: bool
    latest_untrusted: bool
    submissions: int
    last_activity: Any
    passed: bool
    used_today: int
    limit_today: int
    # The place on the leaderboard (1 = best), kept when a page sorts or filters the rows.
    rank: int = 0


def leaderboard(course: Course, now: dt.datetime | None = None) -> list[LeaderboardRow]:
    """Best and latest score per learner, and today's quota use, in THREE queries.

    Per learner, correlated subqueries on indexed columns find the best and the latest
    submission's id (the best through the partial index ``submission_best_score``) and
    today's use; one query reads those submissions, one counts everyone's submissions.
    The number of queries does not grow with the number of learners (tested with 30 × 5
    submissions); ``python -m bench web`` times it at 500 learners × 50 submissions.
    """
    start, end = course.day_bounds(now)
    scored = Submission.objects.filter(
        course=course, status=Status.SCORED, learner=OuterRef("user")
    )
    latest = scored.order_by("-created_at")
    # Only scores that count toward the pass mark can be a learner's best.
    best = scored.filter(counting_filter(course=course)).order_by("-accuracy", "created_at")
    used = (
        Submission.objects.charged()
        .filter(course=course, learner=OuterRef("user"), created_at__gte=start, created_at__lt=end)
        .values("learner")
        .annotate(n=Count("pk"))
        .values("n")
    )
    extra = (
        QuotaGrant.objects.filter(enrollment=OuterRef("pk"), day=start.date())
        .values("enrollment")
        .annotate(total=Sum("extra"))
        .values("total")
    )
    zero = Value(0, output_field=IntegerField())
    # Plain values, not model instances: building 500 enrollments and users costs more
    # than the SQL does.
    enrolled = list(
        Enrollment.objects.filter(course=course, role=Role.LEARNER)
        .annotate(
            best_pk=Subquery(best.values("pk")[:1]),
            latest_pk=Subquery(latest.values("pk")[:1]),
            used=Coalesce(Subquery(used, output_field=IntegerField()), zero),
            extra=Coalesce(Subquery(extra, output_field=IntegerField()), zero),
        )
        .values_list(
            "pk",
            "user_id",
            "user__display_name",
            "user__email",
            "best_pk",
            "latest_pk",
            "used",
            "extra",
        )  # fmt: skip
    )
    wanted = {pk for row in enrolled for pk in row[4:6] if pk is not None}
    scores = {
        pk: (accuracy, created_at, bool(self_reported), bool(untrusted))
        for pk, accuracy, created_at, self_reported, untrusted in Submission.objects.filter(
            pk__in=wanted
        ).values_list("pk", "accuracy", "created_at", "self_reported", "untrusted")
    }
    # How many and when last, for every learner at once: one pass over the course's index.
    activity = {
        learner: (n, last)
        for learner, n, last in Submission.objects.filter(course=course)
        .order_by()
        .values("learner")
        .annotate(n=Count("pk"), last=Max("created_at"))
        .values_list("learner", "n", "last")
    }
    none = (None, None, False, False)
    result = []
    for (
        enrollment_id,
        user_id,
        display_name,
        email,
        best_pk,
        latest_pk,
        used_today,
        extra_today,
    ) in enrolled:
        submissions, last_activity = activity.get(user_id, (0, None))
        best_accuracy, best_at, best_self, _ = scores.get(best_pk, none)
        latest_accuracy, _, latest_self, latest_untrusted = scores.get(latest_pk, none)
        result.append(
            LeaderboardRow(
                learner_id=user_id,
                enrollment_id=enrollment_id,
                name=shown_name(display_name, email),
                email=email,
                best_accuracy=best_accuracy,
                best_submission_id=best_pk,
                best_self_reported=best_self,
                best_at=best_at,
                latest_accuracy=latest_accuracy,
                latest_submission_id=latest_pk,
                latest_self_reported=latest_self,
                latest_untrusted=latest_untrusted,
                submissions=submissions,
                last_activity=last_activity,
                # The best already counts: passing is the threshold alone.
                passed=course.reaches_threshold(best_accuracy),
                used_today=used_today,
                limit_today=course.daily_quota + extra_today,
            )
        )
    # Equal best scores rank by who reached theirs first (Kaggle's rule), then by name.
    never = dt.datetime.max.replace(tzinfo=dt.UTC)
    result.sort(
        key=lambda r: (r.best_accuracy is None, -(r.best_accuracy or 0), r.best_at or never, r.name)
    )
    for place, row in enumerate(result, 1):
        row.rank = place
    return result


# What the leaderboard's columns sort by (``?sort=best``, ``?sort=-best`` descending).
LEADERBOARD_SORTS: dict[str, Callable[[LeaderboardRow], Any]] = {
    "rank": lambda r: r.rank,
    "name": lambda r: r.name.lower(),
    "best": lambda r: r.best_accuracy,
    "latest": lambda r: r.latest_accuracy,
    "passed": lambda r: r.passed,
    "submissions": lambda r: r.submissions,
    "last": lambda r: r.last_activity,
    "today": lambda r: r.used_today,
}


def leaderboard_view(
    rows: list[LeaderboardRow], *, search: str = "", passed: str = "", sort: str = "rank"
) -> list[LeaderboardRow]:
    """The ranked rows a leaderboard page lists: found by name or email, by pass status,
    sorted by a column. Rows without a value in the sorted column go last either way."""
    needle = search.strip().lower()
    if needle:
        rows = [r for r in rows if needle in r.name.lower() or needle in r.email.lower()]
    if passed in ("1", "0"):
        rows = [r for r in rows if r.passed == (passed == "1")]
    key = LEADERBOARD_SORTS.get(sort.lstrip("-"), LEADERBOARD_SORTS["rank"])
    present = [r for r in rows if key(r) is not None]
    missing = [r for r in rows if key(r) is None]
    return sorted(present, key=key, reverse=sort.startswith("-")) + missing


def course_learners(course: Course) -> list[Enrollment]:
    return list(
        Enrollment.objects.filter(course=course, role=Role.LEARNER)
        .select_related("user")
        .order_by("user__display_name", "user__email")
    )


def course_submissions(
    course: Course, *, learner_id: int | None = None, status: str = ""
) -> QuerySet[Submission]:
    """The submission browser's rows, newest first, filtered by learner and status."""
    rows = Submission.objects.filter(course=course).select_related("learner")
    if learner_id:
        rows = rows.filter(learner_id=learner_id)
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at")


def rescorable(course: Course) -> QuerySet[Submission]:
    """What "rescore all" re-queues (``SubmissionQuerySet.rescorable``)."""
    return Submission.objects.filter(course=course).rescorable()


def max_upload_bytes() -> int:
    return int(settings.KATAKANA_MAX_UPLOAD_MB) * 1024 * 1024
