"""Instructor forms: course settings, test-set upload, extra quota slots, submission filters."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from server.courses.models import Course, Enrollment, QuotaGrant
from server.submissions.models import Status

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class _DateTimeLocal(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format=DATETIME_LOCAL)


class CourseSettingsForm(forms.ModelForm):
    """The settings an instructor may change; dates are read in the course's time zone."""

    class Meta:
        model = Course
        fields = [
            "daily_quota",
            "max_in_flight",
            "pass_threshold",
            "overfit_gap",
            "wall_seconds",
            "memory_mb",
            "legacy_allowed",
            "legacy_labelled_allowed",
            "self_reported_counts",
            "show_logs_to_learners",
            "opens_at",
            "closes_at",
            "time_zone",
        ]
        widgets = {"opens_at": _DateTimeLocal(), "closes_at": _DateTimeLocal()}

    # Settings that trade the trust in scores or the secrecy of the test set for
    # convenience: the page shows their help text (which says what each risks) as a warning.
    RISKY = ("legacy_labelled_allowed", "self_reported_counts", "show_logs_to_learners")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("opens_at", "closes_at"):
            field = self.fields[name]
            assert isinstance(field, forms.DateTimeField)
            field.input_formats = [DATETIME_LOCAL, "%Y-%m-%d %H:%M"]
        ceiling = settings.KATAKANA_WALL_SECONDS
        self.fields["wall_seconds"].help_text = _(
            "At most %(seconds)s seconds: the server's own limit."
        ) % {"seconds": ceiling}
        self.fields["memory_mb"].help_text = _(
            "At most %(mb)s MB: the server's own limit. A larger value saved earlier is "
            "lowered to it when a submission runs."
        ) % {"mb": settings.KATAKANA_SANDBOX_MEMORY_MB}
        self.fields["pass_threshold"].help_text = _("Between 0 and 1, for example 0.98.")

    def clean_daily_quota(self) -> int:
        value: int = self.cleaned_data["daily_quota"]
        if not 1 <= value <= 100:
            raise forms.ValidationError(_("Choose between 1 and 100 submissions per day."))
        return value

    def clean_max_in_flight(self) -> int:
        value: int = self.cleaned_data["max_in_flight"]
        if not 1 <= value <= 10:
            raise forms.ValidationError(_("Choose between 1 and 10."))
        return value

    def clean_wall_seconds(self) -> int:
        value: int = self.cleaned_data["wall_seconds"]
        ceiling = settings.KATAKANA_WALL_SECONDS
        if not 10 <= value <= ceiling:
            raise forms.ValidationError(
                _("Choose between 10 and %(seconds)s seconds."), params={"seconds": ceiling}
            )
        return value

    def clean_memory_mb(self) -> int:
        value: int = self.cleaned_data["memory_mb"]
        ceiling = settings.KATAKANA_SANDBOX_MEMORY_MB
        if not 256 <= value <= ceiling:
            raise forms.ValidationError(
                _("Choose between 256 and %(mb)s MB."), params={"mb": ceiling}
            )
        return value

    def clean_time_zone(self) -> str:
        value: str = self.cleaned_data["time_zone"]
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise forms.ValidationError(_("Unknown time zone, for example Asia/Tokyo.")) from exc
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        opens: dt.datetime | None = data.get("opens_at")
        closes: dt.datetime | None = data.get("closes_at")
        if opens and closes and closes <= opens:
            self.add_error("closes_at", _("The closing date must be after the opening date."))
        return data


class TestSetUploadForm(forms.Form):
    # The form's metaclass takes declared fields off the class: form.data stays the POST.
    data = forms.FileField(label=_("Test images (test_data.npy)"))  # type: ignore[assignment]
    labels = forms.FileField(label=_("Test labels (test_label.npy)"))
    note = forms.CharField(label=_("Note"), max_length=300, required=False)

    def _npy(self, name: str) -> Any:
        upload = self.cleaned_data[name]
        if not (upload.name or "").lower().endswith(".npy"):
            raise forms.ValidationError(
                _("Upload a .npy file (got %(name)s)."), params={"name": upload.name}
            )
        return upload

    def clean_data(self) -> Any:
        return self._npy("data")

    def clean_labels(self) -> Any:
        return self._npy("labels")


class QuotaGrantForm(forms.Form):
    extra = forms.IntegerField(label=_("Extra submissions"), min_value=1, max_value=20, initial=1)
    reason = forms.CharField(label=_("Reason"), max_length=300)

    def save(self, *, enrollment: Enrollment, granted_by: Any, day: dt.date) -> QuotaGrant:
        # One short insert; quota_state sums grants, so no lock is needed here.
        return QuotaGrant.objects.create(
            enrollment=enrollment,
            day=day,
            extra=self.cleaned_data["extra"],
            reason=self.cleaned_data["reason"].strip(),
            granted_by=granted_by,
        )


class SubmissionFilterForm(forms.Form):
    learner = forms.TypedChoiceField(
        label=_("Learner"), required=False, coerce=int, empty_value=None
    )
    status = forms.ChoiceField(label=_("Status"), required=False)

    def __init__(self, *args: Any, learners: list[Enrollment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        learner, status = self.fields["learner"], self.fields["status"]
        assert isinstance(learner, forms.ChoiceField) and isinstance(status, forms.ChoiceField)
        learner.choices = [("", _("all learners"))] + [
            (e.user_id, f"{e.user.name} <{e.user.email}>") for e in learners
        ]
        status.choices = [("", _("all statuses")), *Status.choices]
