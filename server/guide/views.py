"""The learner guide: how to package and check a submission, and what every verdict means.

Public (a learner reads it before the first upload, perhaps before logging in) and
read-only. The error-class section is rendered from ``scorer.errors.ERROR_CLASS_TEXT``
so it lists every class the server can return, in the same words as results and emails.
A logged-in learner also sees the actual quota, time zone and limits of their courses.
``/guide/kit/submit_katakana.ipynb`` serves the kit's template notebook and
``/guide/kit/katakana-check.zip`` the local check (``server/guide/checker.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from scorer.errors import ERROR_CLASS_TEXT, ErrorClass
from server.courses.models import Course, Role
from server.guide.checker import KIT_NAME, checker_kit_bytes


@dataclass(frozen=True)
class ErrorClassRow:
    value: str
    title: str
    advice: str
    charged: bool
    found_at_upload: bool


def error_class_rows() -> list[ErrorClassRow]:
    # Iterate the enum, not the dict: a class without text still gets a row.
    rows = []
    for error_class in ErrorClass:
        title, advice = ERROR_CLASS_TEXT.get(error_class, (error_class.value, ""))
        rows.append(
            ErrorClassRow(
                error_class.value,
                _(title),
                _(advice),
                error_class.charged_to_learner,
                error_class.found_at_upload,
            )
        )
    return rows


@require_GET
def guide(request: HttpRequest) -> HttpResponse:
    courses = []
    if request.user.is_authenticated:
        courses = list(
            Course.objects.filter(
                enrollments__user=request.user, enrollments__role=Role.LEARNER
            ).order_by("name")
        )
    context = {
        "error_classes": error_class_rows(),
        "courses": courses,
        "default_quota": Course._meta.get_field("daily_quota").default,
        "default_time_zone": Course._meta.get_field("time_zone").default,
    }
    return render(request, "guide/guide.html", context)


def kit_notebook_path() -> Path:
    return Path(settings.BASE_DIR) / "kit" / "submit_katakana.ipynb"


@require_GET
def kit_notebook(request: HttpRequest) -> FileResponse:
    path = kit_notebook_path()
    if not path.is_file():  # an image built without kit/
        raise Http404("no kit")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename="submit_katakana.ipynb",
        content_type="application/x-ipynb+json",
    )


@require_GET
def checker_kit(request: HttpRequest) -> HttpResponse:
    """``katakana-check.zip``: the local check, built from this server's own code."""
    try:
        data = checker_kit_bytes()
    except FileNotFoundError as missing:  # an image built without locale/ or kit/
        raise Http404(str(missing)) from missing
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{KIT_NAME}.zip"'
    return response
