"""Learner pages: upload with the quota line, the submission list with live progress, a result.

Thin: authorise → validate a form → call one service → respond. Live progress polls
``submission_status`` (JSON); when a run ends the page fetches ``submission_result``
(an HTML fragment with the server-rendered charts) instead of reloading.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from server.accounts.models import signed_in_user
from server.courses.models import Enrollment, Role
from server.ratelimits import upload_limited, upload_wait_message
from server.submissions import charts, gallery, intake, progress, selectors
from server.submissions.emails import email_context
from server.submissions.forms import UploadForm
from server.submissions.models import Phase, ScoreSource, Status, Submission
from server.submissions.presentation import result_view
from server.submissions.quota import quota_state

# The steps a learner sees, in order; the last one is the run's terminal status.
PROGRESS_STEPS = (Phase.QUEUED, Phase.CHECKING, Phase.RUNNING, Phase.SCORING)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    enrollments = list(
        Enrollment.objects.filter(user=signed_in_user(request))
        .select_related("course")
        .order_by("-created_at")
    )
    if not enrollments:
        return render(request, "submissions/no_course.html")
    if len(enrollments) > 1:
        return render(request, "submissions/home.html", {"enrollments": enrollments})
    enrollment = enrollments[0]
    if enrollment.role == Role.INSTRUCTOR:
        return redirect("leaderboard", code=enrollment.course.code)
    return redirect("course", code=enrollment.course.code)


@login_required
def course_page(request: HttpRequest, code: str) -> HttpResponse:
    course, enrollment = selectors.course_for_member(request.user, code)
    is_learner = enrollment.role == Role.LEARNER
    form = UploadForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST" and is_learner and form.is_valid():
        try:
            wait = upload_limited(request)
            if wait:
                raise intake.SubmissionRejected(upload_wait_message(wait), "rate_limited")
            submission = intake.submission_create(
                learner=signed_in_user(request), course=course, upload=form.cleaned_data["archive"]
            )
        except intake.SubmissionRejected as rejected:
            form.add_error("archive", rejected.message)
            status = 429 if rejected.code == "rate_limited" else 200
        else:
            messages.success(request, _("Uploaded. Scoring has started."))
            return redirect("submission_detail", pk=submission.pk)
    quota = quota_state(enrollment)
    submissions = selectors.learner_submissions(request.user, course)
    context = {
        "course": course,
        "form": form,
        "is_learner": is_learner,
        "is_instructor": enrollment.role == Role.INSTRUCTOR,
        "is_open": course.is_open(),
        "not_yet_open": bool(course.opens_at and timezone.now() < course.opens_at),
        "quota": quota,
        "quota_line": selectors.quota_line(quota, course),
        "max_upload_bytes": selectors.max_upload_bytes(),
        "submissions": submissions,
        "in_flight": [s.pk for s in submissions if not s.is_terminal],
        "queue": selectors.queue_health(),
        "history_chart": _history_chart(signed_in_user(request).pk, course, None),
    }
    return render(request, "submissions/course.html", context, status=status)


def status_payload(submission: Submission) -> dict[str, Any]:
    """What the pages poll: status, phase, queue position, the steps, the score when done."""
    position = selectors.queue_position(submission)
    return {
        "id": submission.pk,
        "status": submission.status,
        "status_label": submission.get_status_display(),
        "phase": submission.phase,
        "phase_label": submission.get_phase_display(),
        "terminal": submission.is_terminal,
        "queue_position": position,
        "queue_label": _("position %(n)d in the queue") % {"n": position} if position else "",
        "steps": _steps(submission),
        "accuracy": submission.accuracy,
        "loss": submission.loss,
        "passed": submission.passed,
        "verdict": submission.verdict,
        "self_reported": submission.self_reported,
        # Shown beside the score by the live list: who computed it, when not the server.
        "score_note": score_note(submission),
        "error_class": submission.error_class,
        "detail_url": reverse("submission_detail", args=[submission.pk]),
        "result_url": reverse("submission_result", args=[submission.pk]),
    }


def score_note(submission: Submission) -> str:
    """The label "self-reported" (or "..., untrusted") of a score the server did not compute."""
    if submission.accuracy is None or submission.score_source == ScoreSource.SERVER:
        return ""
    return str(ScoreSource(submission.score_source).label)


def _steps(submission: Submission) -> list[dict[str, str]]:
    """queued → checking → running → scoring → the terminal status, each done/current/todo."""
    phase_labels, status_labels = dict(Phase.choices), dict(Status.choices)
    if submission.status == Status.REJECTED:
        label = str(status_labels[Status.REJECTED])
        return [{"key": str(Status.REJECTED), "label": label, "state": "failed"}]
    keys = [str(step) for step in PROGRESS_STEPS]
    if submission.is_terminal:
        reached = len(keys)
    elif submission.status == Status.QUEUED:
        reached = 0
    else:
        # A claimed run is at least "checking", whatever phase the worker last wrote.
        reached = keys.index(submission.phase) if submission.phase in keys[1:] else 1
    steps = [
        {
            "key": key,
            "label": str(phase_labels[key]),
            "state": "done" if index < reached else "current" if index == reached else "todo",
        }
        for index, key in enumerate(keys)
    ]
    if not submission.is_terminal:
        final, state = str(Status.SCORED), "todo"
    else:
        final = str(submission.status)
        state = "done" if submission.status == Status.SCORED else "failed"
    steps.append({"key": final, "label": str(status_labels[final]), "state": state})
    return steps


def result_context(submission: Submission, user: Any) -> dict[str, Any]:
    """Everything the result page and its live-swapped fragment show."""
    context = email_context(submission)
    course = submission.course
    instructor = selectors.is_instructor(user, course)
    context.update(
        status=status_payload(submission),
        is_instructor=instructor,
        # Hidden-set output can leak test images: learners see it only where the course allows.
        show_logs=instructor or course.show_logs_to_learners,
        show_detail=instructor
        or course.show_logs_to_learners
        or submission.status == Status.REJECTED,
        per_class_chart=None,
        confusion_chart=None,
        history_chart=None,
        balanced_accuracy=None,
    )
    view = result_view(submission)
    threshold_label = _("threshold")
    if view.per_class:
        context["per_class_chart"] = charts.per_class_bars(
            [c.accuracy for c in view.per_class],
            course.pass_threshold,
            label=_("Accuracy per class"),
            threshold_label=threshold_label,
        )
    if view.confusion:
        context["confusion_chart"] = charts.confusion_heatmap(
            view.confusion,
            label=_("Confusion matrix"),
            true_label=_("true class"),
            predicted_label=_("predicted class"),
        )
    context["balanced_accuracy"] = view.balanced_accuracy
    context["result_email"] = submission.emails.filter(generation=submission.generation).first()
    context["history_chart"] = _history_chart(submission.learner_id, course, submission.pk)
    context["mistake_groups"] = gallery.mistake_groups(submission)
    return context


def _history_chart(learner_id: int, course: Any, current_pk: int | None) -> Any:
    history = selectors.accuracy_history(learner_id, course)
    if not history:
        return None
    zone = course.tz
    points = [
        charts.HistoryMark(
            when=p.created_at.astimezone(zone),
            accuracy=p.accuracy,
            current=p.pk == current_pk,
            self_reported=p.self_reported,
            counts=p.counts,
        )
        for p in history
    ]
    return charts.history_line(
        points,
        course.pass_threshold,
        label=_("Accuracy of your scored submissions"),
        threshold_label=_("threshold"),
        self_reported_label=_("self-reported"),
    )


@login_required
def submission_detail(request: HttpRequest, pk: int) -> HttpResponse:
    submission = selectors.submission_for_user(request.user, pk)
    return render(request, "submissions/detail.html", result_context(submission, request.user))


@login_required
@never_cache
def submission_result(request: HttpRequest, pk: int) -> HttpResponse:
    submission = selectors.submission_for_user(request.user, pk)
    return render(request, "submissions/_result.html", result_context(submission, request.user))


@login_required
@never_cache
def submission_status(request: HttpRequest, pk: int) -> JsonResponse:
    submission = selectors.submission_for_user(request.user, pk)
    return JsonResponse(status_payload(submission))


@login_required
@never_cache
def submission_archive(request: HttpRequest, pk: int) -> FileResponse:
    """The zip as uploaded, for its learner and the course's instructors (404 otherwise).

    Always an attachment of type application/zip with nosniff (SecurityMiddleware): the
    learner's bytes are never rendered by the browser. 404 once the retention purge
    (``purge_artefacts``) has deleted it.
    """
    submission = selectors.submission_for_user(request.user, pk)
    archive = submission.archive
    if not archive or not archive.storage.exists(archive.name):
        raise Http404("the zip is no longer kept")
    return FileResponse(
        archive.open("rb"),
        as_attachment=True,
        filename=submission.original_name or f"submission-{submission.pk}.zip",
        content_type="application/zip",
    )


@login_required
@require_GET
def my_history_csv(request: HttpRequest, code: str) -> HttpResponse:
    """The signed-in learner's own scored submissions, for a spreadsheet."""
    course, _enrollment = selectors.course_for_member(request.user, code)
    return progress.history_csv(signed_in_user(request).pk, course)


@login_required
@require_GET
def my_history_png(request: HttpRequest, code: str) -> HttpResponse:
    """The signed-in learner's accuracy over time as a 1280x720 chart for a slide."""
    course, _enrollment = selectors.course_for_member(request.user, code)
    return progress.history_png(signed_in_user(request).pk, course)


@login_required
@require_GET
def training_image(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """A public training image the submission's model got wrong (its gallery)."""
    submission = selectors.submission_for_user(request.user, pk)
    return gallery.training_image_png(submission, index)
