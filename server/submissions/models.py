"""A learner's submission, its lifecycle state and its result.

The database is the source of truth for every state. A submission is QUEUED (task
enqueued after commit), RUNNING (claimed with a conditional update, holding a lease),
then ends SCORED, FAILED (the learner's code) or ERROR (infrastructure, not charged).
REJECTED uploads never reached the queue (bad archive, quota) and are not charged.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import Case, Count, F, Max, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _

from server.accounts.models import User
from server.courses.models import Course, TestSet


@deconstructible
class SubmissionStorage(FileSystemStorage):
    """Stored zips under KATAKANA_SUBMISSIONS_DIR, read at each use (never web-served)."""

    @property  # type: ignore[override]
    def base_location(self) -> str:
        return str(settings.KATAKANA_SUBMISSIONS_DIR)

    @property  # type: ignore[override]
    def location(self) -> str:
        return os.path.abspath(self.base_location)


submission_storage = SubmissionStorage()


def _archive_path(instance: Submission, filename: str) -> str:
    # The stored name never contains the learner's name or the original file name.
    return f"{instance.course.code}/{instance.token}.zip"


class Status(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    SCORED = "scored", _("scored")
    FAILED = "failed", _("failed")
    ERROR = "error", _("server error")
    REJECTED = "rejected", _("rejected")


TERMINAL = (Status.SCORED, Status.FAILED, Status.ERROR, Status.REJECTED)
# Finished runs; rejected uploads never ran. See ``SubmissionQuerySet.rescorable``.
RESCORABLE_STATUSES = (Status.SCORED, Status.FAILED, Status.ERROR)


class Phase(models.TextChoices):
    QUEUED = "queued", _("queued")
    CHECKING = "checking", _("checking")
    RUNNING = "running", _("running")
    SCORING = "scoring", _("scoring")
    DONE = "done", _("done")


class WorkerKind(models.TextChoices):
    CPU = "cpu", _("CPU")
    GPU = "gpu", _("GPU")


class Verdict(models.TextChoices):
    """What a score means for the pass mark (基準値)."""

    PASSED = "passed", _("passed")
    BELOW = "below", _("below the threshold")
    NOT_COUNTED = "not_counted", _("not counted")


class ScoreSource(models.TextChoices):
    """Who computed a score: the server (trusted) or the learner's own code."""

    SERVER = "server", _("computed by the server")
    SELF_REPORTED = "self_reported", _("self-reported")
    UNTRUSTED = "untrusted", _("self-reported, untrusted")


# --- the pass rule ---------------------------------------------------------------------
# A score counts toward the pass mark only if it is not untrusted and, when it is
# self-reported, its course lets self-reported scores count. Every reader uses one of
# these two forms of that rule (the SQL one for lists, the Python one for a loaded row):
# the leaderboard, its CSV, the distribution chart, the pass count, the result page, the
# email and the API. tests/server/submissions/test_pass_rule.py checks that both forms
# agree on every combination.


def counting_filter(prefix: str = "", *, course: Course | None = None) -> models.Q:
    """The rule as a filter on submissions (``prefix`` for a related lookup).

    With ``course`` given (every row is of that course), its setting is read here rather
    than joined per row: the leaderboard's best-score lookup then stays on one index."""
    trusted = models.Q(**{f"{prefix}untrusted": False})
    own_only = models.Q(**{f"{prefix}self_reported": False})
    if course is not None:
        return trusted if course.self_reported_counts else trusted & own_only
    return trusted & (own_only | models.Q(**{f"{prefix}course__self_reported_counts": True}))


def score_counts(*, untrusted: bool, self_reported: bool, course: Course) -> bool:
    """The rule for one loaded score."""
    return not untrusted and (not self_reported or course.self_reported_counts)


class SubmissionQuerySet(models.QuerySet["Submission"]):
    def for_learner(self, user: User) -> SubmissionQuerySet:
        return self.filter(learner=user)

    def counting(self) -> SubmissionQuerySet:
        """Scores that count toward the pass mark (see ``counting_filter``)."""
        return self.filter(counting_filter())

    def rescorable(self) -> SubmissionQuerySet:
        """What can be queued again: a finished run whose zip is still stored.

        The one rule for every rescore (instructor buttons, "rescore all", the ops
        command): a purged zip would only fail three times and email the learner.
        ``Submission.is_rescorable`` says the same of one row.
        """
        return self.filter(status__in=RESCORABLE_STATUSES).exclude(archive="")

    def queued_uploads(self) -> SubmissionQuerySet:
        """Queued first-generation rows: what "how long has the queue waited" measures.

        A rescore keeps its original upload time, so counting it would read a
        course-wide rescore of old rows as a week-old backlog.
        """
        return self.filter(status=Status.QUEUED, generation=1)

    def in_claim_order(self, *, hint: int = 0) -> SubmissionQuerySet:
        """QUEUED rows in the order workers claim them: the one definition of that order.

        Claimable now before those still backing off after a fault; fresh uploads before
        rescores; then the learners with the fewest runs in progress; then the learner
        served longest ago (round robin); then the message's ``hint``; then first
        enqueued. ``submission_claim`` takes the first; the learner's queue position
        counts the rows before theirs.
        """
        now = timezone.now()
        mine = (
            Submission.objects.filter(learner=OuterRef("learner_id"))
            .order_by()
            .values("learner_id")
        )
        # Scalar subqueries, not window functions: PostgreSQL refuses FOR UPDATE beside those.
        running = mine.filter(status=Status.RUNNING).annotate(n=Count("pk")).values("n")
        served = mine.filter(started_at__isnull=False).annotate(m=Max("started_at")).values("m")
        return (
            self.filter(status=Status.QUEUED)
            .annotate(
                backing_off=Case(When(lease_until__gt=now, then=Value(1)), default=Value(0)),
                rescore=Case(When(generation__gt=1, then=Value(1)), default=Value(0)),
                running=Coalesce(Subquery(running), Value(0)),
                served=Subquery(served),
                not_hinted=Case(When(pk=hint, then=Value(0)), default=Value(1)),
            )
            .order_by(
                "backing_off",
                "rescore",
                "running",
                F("served").asc(nulls_first=True),
                "not_hinted",
                "enqueued_at",
                "pk",
            )
        )

    def in_flight(self) -> SubmissionQuerySet:
        return self.filter(status__in=[Status.QUEUED, Status.RUNNING])

    def charged(self) -> SubmissionQuerySet:
        return self.filter(charged=True)


class Submission(models.Model):
    token = models.CharField(max_length=32, unique=True, editable=False)
    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="submissions")
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="submissions"
    )
    archive = models.FileField(storage=submission_storage, upload_to=_archive_path, max_length=300)
    original_name = models.CharField(_("file name"), max_length=300)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.QUEUED)
    charged = models.BooleanField(default=True, help_text=_("Counts against the daily quota."))
    generation = models.PositiveIntegerField(default=1, help_text=_("Bumped by each rescore."))

    # Lifecycle bookkeeping (issue: never lose, duplicate or strand work).
    attempts = models.PositiveSmallIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # Routing (server/submissions/routing.py): what the zip imports, read at upload, and
    # so which kind of worker scores it.
    frameworks = models.JSONField(default=list, blank=True)
    worker_kind = models.CharField(max_length=8, choices=WorkerKind.choices, default=WorkerKind.CPU)

    # Result
    testset = models.ForeignKey(TestSet, on_delete=models.PROTECT, null=True, blank=True)
    contract = models.CharField(max_length=16, blank=True)
    entry = models.CharField(max_length=300, blank=True)
    accuracy = models.FloatField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(null=True, blank=True)
    # The class answered for each hidden test image (int8 bytes, in the test set's order)
    # and the SHA-256 of each model file in the zip: copy detection's evidence
    # (server/submissions/similarity.py). Instructors only; never shown to learners.
    predicted = models.BinaryField(null=True, blank=True, editable=False)
    model_files = models.JSONField(default=dict, blank=True)
    self_reported = models.BooleanField(default=False)
    untrusted = models.BooleanField(default=False)
    error_class = models.CharField(max_length=32, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    # English msgid with %(name)s placeholders, translated when displayed or emailed.
    error_message = models.TextField(blank=True)
    error_params = models.JSONField(default=dict, blank=True)
    # Instructor-facing detail (traceback tail, entry chosen).
    detail = models.TextField(blank=True)
    log_excerpt = models.TextField(blank=True)
    backend = models.CharField(max_length=32, blank=True)
    image_digest = models.CharField(max_length=100, blank=True)
    durations = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = SubmissionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["course", "learner", "created_at"]),
            models.Index(fields=["status", "created_at"]),
            # A learner's best score in a course: the leaderboard reads the first row.
            models.Index(
                fields=["learner", "course", "-accuracy", "created_at"],
                condition=models.Q(status="scored"),
                name="submission_best_score",
            ),
        ]

    @property
    def is_rescorable(self) -> bool:
        """``Submission.objects.rescorable()`` for one row (a test keeps the two equal)."""
        return self.status in RESCORABLE_STATUSES and bool(self.archive)

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_name} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    # str(): the plain value, what templates and JSON compare with.
    @property
    def score_source(self) -> str:
        if self.untrusted:
            return str(ScoreSource.UNTRUSTED)
        return str(ScoreSource.SELF_REPORTED if self.self_reported else ScoreSource.SERVER)

    @property
    def counts_toward_pass(self) -> bool:
        return score_counts(
            untrusted=self.untrusted, self_reported=self.self_reported, course=self.course
        )

    @property
    def verdict(self) -> str | None:
        """passed / below / not_counted for a score, None without one."""
        if self.accuracy is None:
            return None
        if not self.counts_toward_pass:
            return str(Verdict.NOT_COUNTED)
        passes = self.course.reaches_threshold(self.accuracy)
        return str(Verdict.PASSED if passes else Verdict.BELOW)

    @property
    def passed(self) -> bool | None:
        verdict = self.verdict
        return None if verdict is None else verdict == Verdict.PASSED
