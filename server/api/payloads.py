"""JSON shapes of the API: one function per resource, plain dicts for JsonResponse."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from server.accounts.models import User
from server.submissions.models import Submission
from server.submissions.presentation import ErrorView, result_view
from server.submissions.selectors import queue_position


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def submission_summary(request: HttpRequest, submission: Submission) -> dict[str, Any]:
    return {
        "id": submission.pk,
        "course": submission.course.code,
        "file_name": submission.original_name,
        "created_at": _iso(submission.created_at),
        "finished_at": _iso(submission.finished_at),
        "status": submission.status,
        "status_label": submission.get_status_display(),
        "terminal": submission.is_terminal,
        "accuracy": submission.accuracy,
        "loss": submission.loss,
        # Who computed the score, and whether it counts toward the pass mark (the one rule
        # of Submission.verdict): passed / below / not_counted, null without a score.
        "self_reported": submission.self_reported,
        "untrusted": submission.untrusted,
        "verdict": submission.verdict,
        "passed": submission.passed,
        "url": request.build_absolute_uri(reverse("api:submission", args=[submission.pk])),
        "html_url": request.build_absolute_uri(reverse("submission_detail", args=[submission.pk])),
    }


def submission_detail(request: HttpRequest, submission: Submission) -> dict[str, Any]:
    view = result_view(submission)
    per_class = [
        {"class_id": c.class_id, "label": c.label, "accuracy": c.accuracy} for c in view.per_class
    ]
    return {
        **submission_summary(request, submission),
        "phase": submission.phase,
        "phase_label": submission.get_phase_display(),
        "queue_position": queue_position(submission),
        "contract": submission.contract,
        "entry": submission.entry,
        "pass_threshold": submission.course.pass_threshold,
        "balanced_accuracy": view.balanced_accuracy,
        "train_accuracy": view.train_accuracy,
        "overfitting": view.overfitting,
        "per_class_accuracy": per_class,
        "error": _error(view.error),
    }


def _error(error: ErrorView | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "class": error.error_class,
        "code": error.code,
        "title": error.title,
        "message": error.message,
        "advice": error.advice,
    }


def me(user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "name": user.name,
        "language": user.language_in_use,
        "courses": [
            {"code": e.course.code, "name": e.course.name, "role": e.role}
            for e in user.enrollments.select_related("course").order_by("course__code")
        ],
    }
