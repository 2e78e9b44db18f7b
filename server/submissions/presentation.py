"""How a submission's result reads, in the active language: one module for every reader.

The result page (and its live fragment), the result and failure emails and the API all
show the same numbers, the same per-class table, the same verdict and the same error
title, message and advice; each builds its view from ``result_view`` and only chooses
the layout. Learner-chosen text never reaches here except through the error's stored
message and parameters, which ``scorer.taint`` already narrowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import translation

from scorer.errors import ERROR_CLASS_TEXT, ErrorClass
from scorer.metrics import CLASS_NAMES
from scorer.translation import fill
from server.submissions.models import Submission


@dataclass(frozen=True)
class ClassScore:
    class_id: int
    label: str
    accuracy: float


@dataclass(frozen=True)
class ErrorView:
    error_class: str
    code: str
    title: str
    message: str
    advice: str


@dataclass(frozen=True)
class ResultView:
    accuracy: float | None
    loss: float | None
    balanced_accuracy: float | None
    per_class: list[ClassScore] = field(default_factory=list)
    confusion: list[list[int]] | None = None
    # The same model on the course's public training set, when the run measured it, and
    # whether the gap to the test accuracy reaches the course's overfitting note.
    train_accuracy: float | None = None
    overfitting: bool = False
    # passed / below / not_counted (Submission.verdict), None without a score.
    verdict: str | None = None
    passed: bool = False
    self_reported: bool = False
    untrusted: bool = False
    error: ErrorView | None = None


def result_view(submission: Submission) -> ResultView:
    metrics: dict[str, Any] = submission.metrics or {}
    per_class = [
        ClassScore(index, CLASS_NAMES[index], float(accuracy))
        for index, accuracy in enumerate(metrics.get("per_class_accuracy", []))
        if index < len(CLASS_NAMES)
    ]
    train = metrics.get("train_accuracy")
    train_accuracy = float(train) if isinstance(train, int | float) else None
    gap = (
        train_accuracy - submission.accuracy
        if train_accuracy is not None and submission.accuracy is not None
        else None
    )
    return ResultView(
        train_accuracy=train_accuracy,
        overfitting=gap is not None and gap >= submission.course.overfit_gap,
        accuracy=submission.accuracy,
        loss=submission.loss,
        balanced_accuracy=metrics.get("balanced_accuracy"),
        per_class=per_class,
        confusion=metrics.get("confusion"),
        verdict=submission.verdict,
        passed=bool(submission.passed),
        self_reported=submission.self_reported,
        untrusted=submission.untrusted,
        error=error_view(submission),
    )


def _error_text(error_class: str) -> tuple[str, str]:
    try:
        return ERROR_CLASS_TEXT[ErrorClass(error_class)]
    except (ValueError, KeyError):  # a class from an older release
        return ERROR_CLASS_TEXT[ErrorClass.LEARNER_EXCEPTION]


def error_title(error_class: str) -> str:
    """An error class's title as the guide and the learner's result page name it."""
    return translation.gettext(_error_text(error_class)[0])


def error_view(submission: Submission) -> ErrorView | None:
    if not submission.error_class:
        return None
    title, advice = _error_text(submission.error_class)
    return ErrorView(
        error_class=submission.error_class,
        code=submission.error_code,
        title=translation.gettext(title),
        message=error_message(submission),
        advice=translation.gettext(advice),
    )


def error_message(submission: Submission) -> str:
    if not submission.error_message:
        return ""
    return fill(translation.gettext, submission.error_message, submission.error_params)
