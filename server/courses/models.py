"""Courses, who is enrolled in them and in which role, their hidden test sets and quota grants."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Course(models.Model):
    name = models.CharField(_("course name"), max_length=200)
    code = models.SlugField(_("course code"), max_length=64, unique=True, help_text="dl_tokyo_2026")
    daily_quota = models.PositiveSmallIntegerField(_("submissions per day"), default=3)
    pass_threshold = models.FloatField(
        _("pass threshold"),
        default=0.98,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default="Asia/Tokyo")
    opens_at = models.DateTimeField(_("opens at"), null=True, blank=True)
    closes_at = models.DateTimeField(_("closes at"), null=True, blank=True)
    legacy_allowed = models.BooleanField(
        _("accept the legacy contract (func_predict notebooks)"),
        default=True,
        help_text=_(
            "Notebooks written like the course material (makedataset, func_predict, main). "
            "The server computes their score itself; their code never sees the labels."
        ),
    )
    # Both off by default: each trades the trust in a score for convenience, and the
    # settings page says what each risks. The pass rule that reads self_reported_counts is
    # ``Submission.counts_toward_pass`` / ``SubmissionQuerySet.counting``.
    legacy_labelled_allowed = models.BooleanField(
        _("run legacy notebooks with the labels when they cannot be scored without them"),
        default=False,
        help_text=_(
            "Off by default: such a zip is refused, not charged, with advice to define "
            "predict(test_data). When on, it runs again with the hidden test labels and its "
            "own printed score is stored, marked self-reported. Risk: that run hands the "
            "hidden labels to the learner's code, which can keep them or carry them out."
        ),
    )
    self_reported_counts = models.BooleanField(
        _("self-reported scores count toward the pass threshold"),
        default=False,
        help_text=_(
            "Off by default: only scores the server computed itself can pass. Risk: a "
            "self-reported score was computed by the learner's own code and can be forged. "
            "Scores flagged as untrusted never count."
        ),
    )
    max_in_flight = models.PositiveSmallIntegerField(
        _("submissions in flight per learner"), default=1
    )
    overfit_gap = models.FloatField(
        _("overfitting note from a gap of"),
        default=0.03,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "When a model's accuracy on the public training set exceeds its accuracy on "
            "the hidden test set by at least this much (0.03 = 3 points), the result page "
            "and email suggest it may be overfitting, as the course material describes. "
            "Only shown when the course's test set is stored with its training set."
        ),
    )
    wall_seconds = models.PositiveIntegerField(_("time limit (seconds)"), default=600)
    memory_mb = models.PositiveIntegerField(_("memory limit (MB)"), default=4096)
    show_logs_to_learners = models.BooleanField(
        _("show hidden-set logs to learners"),
        default=False,
        help_text=_("Off by default: printed output of a hidden-set run can leak test images."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    # The limits a run actually gets: the course's, clamped by the operator's ceilings
    # (KATAKANA_WALL_SECONDS, KATAKANA_SANDBOX_MEMORY_MB). The one rule the worker, the
    # settings page and the learners' pages use: a row saved before a ceiling was lowered,
    # or written through the admin, never gives a sandbox more than the host allows.
    @property
    def effective_wall_seconds(self) -> int:
        return min(self.wall_seconds, settings.KATAKANA_WALL_SECONDS)

    @property
    def effective_memory_mb(self) -> int:
        return min(self.memory_mb, settings.KATAKANA_SANDBOX_MEMORY_MB)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def day_bounds(self, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        """Start and end of the course day containing ``now``, in the course's time zone."""
        local = (now or timezone.now()).astimezone(self.tz)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + dt.timedelta(days=1)

    def is_open(self, now: dt.datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.opens_at and now < self.opens_at:
            return False
        return not (self.closes_at and now >= self.closes_at)

    def reaches_threshold(self, accuracy: float | None) -> bool:
        """Whether a score that counts (``Submission.counts_toward_pass``) passes."""
        return accuracy is not None and accuracy >= self.pass_threshold

    @property
    def active_testset(self) -> TestSet | None:
        return self.testsets.filter(is_active=True).order_by("-version").first()


class Role(models.TextChoices):
    LEARNER = "learner", _("learner")
    INSTRUCTOR = "instructor", _("instructor")


class Enrollment(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrollments"
    )
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="enrollments")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.LEARNER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "course"], name="one_enrollment_per_course")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.course.code} as {self.role}"


class QuotaGrant(models.Model):
    """Extra submission slots an instructor gave a learner for one course day."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="grants")
    day = models.DateField(_("course day"))
    extra = models.PositiveSmallIntegerField(_("extra submissions"), default=1)
    reason = models.CharField(_("reason"), max_length=300)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)


class TestSet(models.Model):
    """A versioned hidden test set, stored outside any web-served directory."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="testsets")
    version = models.PositiveIntegerField()
    directory = models.CharField(max_length=500)
    n = models.PositiveIntegerField()
    class_counts = models.JSONField(default=list)
    sha256_data = models.CharField(max_length=64)
    sha256_labels = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["course", "version"], name="one_testset_version")
        ]

    def __str__(self) -> str:
        return f"{self.course.code} test set v{self.version} ({self.n})"

    @property
    def path(self) -> Path:
        return Path(self.directory)
