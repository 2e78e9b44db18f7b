"""Result and failure emails: one per terminal state of a submission generation.

``outbox_create`` runs inside the transaction that records the outcome (``lifecycle``),
so the email exists exactly when the result does; the outbox (``server.outbox``) sends
it after commit, retries and gives up. The content is the result page's
(``presentation.result_view``), rendered in the learner's language when it is sent.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from server.outbox.models import EmailKind, OutboxEmail
from server.outbox.services import register, render_email, send_on_commit
from server.submissions.models import Status, Submission
from server.submissions.presentation import result_view


def outbox_create(submission: Submission, *, previous_accuracy: float | None = None) -> OutboxEmail:
    """The one email of this terminal state (unique per submission generation).

    A rescore (generation > 1) keeps ``previous_accuracy`` so its email can say it is a
    rescore and what changed; a learner who got an unexplained second email would not
    know which score stands.
    """
    kind = EmailKind.RESULT if submission.status == Status.SCORED else EmailKind.FAILURE
    email, _created = OutboxEmail.objects.get_or_create(
        submission=submission,
        generation=submission.generation,
        defaults={
            "kind": kind,
            "to": submission.learner.email,
            "skipped": not submission.learner.email_results,
            "previous_accuracy": previous_accuracy if submission.generation > 1 else None,
        },
    )
    if not email.skipped and email.sent_at is None:
        send_on_commit(email)
    return email


def rescore_context(email: OutboxEmail) -> dict[str, object]:
    """Whether a result or failure email is a rescore's, and the accuracy before it."""
    submission = email.submission
    rescore = bool(email.generation and email.generation > 1)
    change = None
    now, before = (submission.accuracy if submission else None), email.previous_accuracy
    if rescore and now is not None and before is not None:
        change = now - before
    return {
        "rescore": rescore,
        "previous_accuracy": email.previous_accuracy,
        "accuracy_change": "" if change is None else f"{change:+.4f}",
    }


def email_context(submission: Submission) -> dict[str, object]:
    """The result page's and the emails' context: ``presentation.result_view`` laid out."""
    view = result_view(submission)
    error = view.error
    return {
        "submission": submission,
        "course": submission.course,
        "learner": submission.learner,
        "result": view,
        "per_class": [{"name": c.label, "accuracy": c.accuracy} for c in view.per_class],
        "verdict": view.verdict,
        "passed": view.passed,
        "error_title": error.title if error else "",
        "error_advice": error.advice if error else "",
        "error_message": error.message if error else "",
        "url": settings.SITE_URL + reverse("submission_detail", args=[submission.pk]),
        "guide_url": settings.SITE_URL
        + reverse("guide")
        + (f"#error-{submission.error_class}" if submission.error_class else ""),
    }


def result_message(email: OutboxEmail) -> EmailMultiAlternatives:
    """The result or failure email of ``email``'s submission generation."""
    submission = email.submission
    assert submission is not None  # the database's check: these kinds have a submission
    return render_email(
        str(email.kind),
        language=submission.learner.language_in_use,
        to=email.to,
        context=lambda: {**email_context(submission), **rescore_context(email)},
    )


def register_emails() -> None:
    """Tell the outbox how result and failure emails are made (``SubmissionsConfig.ready``)."""
    for kind in (EmailKind.RESULT, EmailKind.FAILURE):
        register(kind, build=result_message)
