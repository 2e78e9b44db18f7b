"""HTTP API views (plain JsonResponse, no framework): thin like the pages.

Authorise (bearer token) → validate (the web upload form) → call one service → respond.
Every error is ``{"code", "message"}`` with the HTTP status that fits it; see docs/api.md.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from server.accounts.models import signed_in_user
from server.api import payloads
from server.api.auth import api_error, token_required
from server.courses.models import Course, Enrollment, Role
from server.ratelimits import upload_limited, upload_wait_message
from server.submissions.forms import UploadForm
from server.submissions.intake import SubmissionRejected, submission_create
from server.submissions.models import Submission
from server.submissions.quota import quota_state
from server.submissions.selectors import submission_for_user

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

# HTTP status of each refusal code of submission_create; any other code is an archive
# problem found at intake (the rejected submission is kept and its id returned): 422.
REJECTION_STATUS = {
    "not_enrolled": 403,
    "closed": 403,
    "quota_exhausted": 429,
    "in_flight": 409,
    "storage_full": 409,
    "no_testset": 503,
}


def _method_not_allowed(allowed: str) -> JsonResponse:
    response = api_error(405, "method_not_allowed", _("Method not allowed."))
    response["Allow"] = allowed
    return response


@token_required
def me(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed("GET")
    return JsonResponse(payloads.me(request.user))  # type: ignore[arg-type]


@token_required
def submissions(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _submission_list(request)
    if request.method == "POST":
        return _submission_create(request)
    return _method_not_allowed("GET, POST")


@token_required
def submission(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed("GET")
    try:
        found = submission_for_user(request.user, pk)
    except Http404:
        return api_error(404, "not_found", _("No such submission."))
    return JsonResponse(payloads.submission_detail(request, found))


def _submission_list(request: HttpRequest) -> HttpResponse:
    try:
        limit = min(max(int(request.GET.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)
    except ValueError:
        return api_error(400, "invalid_limit", _("limit must be a whole number."))
    mine = Submission.objects.for_learner(signed_in_user(request)).select_related("course")
    if code := request.GET.get("course"):
        mine = mine.filter(course__code=code)
    items = [payloads.submission_summary(request, s) for s in mine[:limit]]
    return JsonResponse({"submissions": items})


def _course_for_upload(request: HttpRequest) -> Course | JsonResponse:
    code = request.POST.get("course", "").strip()
    enrollments = Enrollment.objects.filter(user=signed_in_user(request)).select_related("course")
    if code:
        enrollment = enrollments.filter(course__code=code).first()
        if enrollment is None:
            # Same answer for a course that does not exist and one the user is not in.
            return api_error(
                404,
                "course_not_found",
                _("You are not enrolled in a course %(code)s.") % {"code": code},
            )
        return enrollment.course
    as_learner = [e.course for e in enrollments.filter(role=Role.LEARNER)]
    if len(as_learner) == 1:
        return as_learner[0]
    return api_error(
        400, "course_required", _("Name the course: add the form field course=<course code>.")
    )


def _submission_create(request: HttpRequest) -> HttpResponse:
    form = UploadForm(data=request.POST, files=request.FILES)
    if not form.is_valid():
        error = form.errors.as_data()["archive"][0]
        code = "archive_required" if error.code == "required" else (error.code or "invalid_upload")
        return api_error(400 if code == "archive_required" else 422, code, error.messages[0])
    course = _course_for_upload(request)
    if isinstance(course, JsonResponse):
        return course
    wait = upload_limited(request)
    if wait:
        response = api_error(429, "rate_limited", upload_wait_message(wait))
        response["Retry-After"] = str(wait)
        return response
    try:
        created = submission_create(
            learner=signed_in_user(request), course=course, upload=form.cleaned_data["archive"]
        )
    except SubmissionRejected as rejected:
        extra: dict[str, object] = {}
        if rejected.submission:
            extra["submission"] = rejected.submission.pk
        retry_after = None
        if rejected.code == "quota_exhausted":
            # A client can sleep until the course day turns over instead of polling.
            enrollment = Enrollment.objects.get(user=signed_in_user(request), course=course)
            state = quota_state(enrollment)
            extra["resets_at"] = state.resets_at.isoformat()
            retry_after = max(1, state.seconds_to_reset)
        status = REJECTION_STATUS.get(rejected.code, 422)
        response = api_error(status, rejected.code, rejected.message, **extra)
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response
    url = request.build_absolute_uri(reverse("api:submission", args=[created.pk]))
    response = JsonResponse(
        {
            "id": created.pk,
            "status": created.status,
            "url": url,
            "html_url": request.build_absolute_uri(reverse("submission_detail", args=[created.pk])),
        },
        status=201,
    )
    response["Location"] = url
    return response
