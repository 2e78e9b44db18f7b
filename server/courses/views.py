"""Instructor pages of one course: leaderboard and CSV, submission browser, rescoring,
settings, test-set upload and extra quota slots.

Every view starts with ``selectors.course_for_instructor``: anyone who does not teach
the course gets a 404, never a hint that the page exists.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from scorer.errors import ScoringError
from server.courses.forms import (
    CourseSettingsForm,
    QuotaGrantForm,
    SubmissionFilterForm,
    TestSetUploadForm,
)
from server.courses.models import Course, Enrollment, Role, TestSet
from server.courses.services import testset_load
from server.exports import excel_csv_response, excel_safe
from server.ops.health import email_trouble
from server.submissions import charts, cohort, lifecycle, selectors, similarity
from server.submissions.models import Submission
from server.submissions.presentation import error_title


def instructor_nav(course: Course, active: str) -> dict[str, object]:
    """The context of the instructor pages' header and tab bar (``courses/_nav.html``)."""
    return {
        "course": course,
        "active": active,
        "queue": selectors.queue_health(),
        "email_trouble": email_trouble(),
    }


@login_required
def leaderboard(request: HttpRequest, code: str) -> HttpResponse:
    course = selectors.course_for_instructor(request.user, code)
    rows = selectors.leaderboard(course)
    # The best scores that count: the same ones the pass count and the CSV use.
    scored = [r for r in rows if r.best_accuracy is not None]
    distribution = (
        charts.distribution_bars(
            [r.best_accuracy for r in scored if r.best_accuracy is not None],
            course.pass_threshold,
            label=_("Distribution of best scores"),
            threshold_label=_("threshold"),
            count_label=_("learners"),
            self_reported=[r.best_self_reported for r in scored],
            self_reported_label=_("self-reported"),
        )
        if scored
        else None
    )
    search, passed = request.GET.get("q", "")[:200], request.GET.get("passed", "")
    sort = request.GET.get("sort", "rank")
    listed = selectors.leaderboard_view(rows, search=search, passed=passed, sort=sort)
    page = Paginator(listed, LEADERBOARD_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        **instructor_nav(course, "leaderboard"),
        "rows": rows,
        "page": page,
        "shown": len(listed),
        "search": search,
        "pass_filter": passed,
        "sort": sort,
        "columns": _leaderboard_columns(request, sort),
        "query": _query_without_page(request).urlencode(),
        "passed": sum(r.passed for r in rows),
        "distribution_chart": distribution,
        "grant_form": QuotaGrantForm(),
    }
    return render(request, "courses/leaderboard.html", context)


@login_required
def cohort_page(request: HttpRequest, code: str) -> HttpResponse:
    """Who has passed by when, and what the class confuses, on a tab of its own."""
    course = selectors.course_for_instructor(request.user, code)
    learners = Enrollment.objects.filter(course=course, role=Role.LEARNER).count()
    context = {**instructor_nav(course, "cohort"), **_cohort_context(course, learners=learners)}
    return render(request, "courses/cohort.html", context)


# Rows per leaderboard page: a page renders in well under 100 ms (python -m bench web).
LEADERBOARD_PAGE_SIZE = 50


def _query_without_page(request: HttpRequest) -> QueryDict:
    """This page's filters and sort, to carry into its pager and header links."""
    query = request.GET.copy()
    query.pop("page", None)
    return query


def _leaderboard_columns(request: HttpRequest, sort: str) -> list[dict[str, object]]:
    """The table's headers: each a link that sorts by it (again: the other way)."""
    columns = [
        ("rank", "#", False),
        ("name", _("Learner"), False),
        ("best", _("Best"), True),
        ("latest", _("Latest"), True),
        ("passed", _("Passed"), False),
        ("submissions", _("Submissions"), True),
        ("last", _("Last activity"), False),
        ("today", _("Today"), True),
    ]
    # Scores, counts and dates read best from the top down; names and ranks from A / 1.
    first_descending = {"best", "latest", "passed", "submissions", "last", "today"}
    result = []
    for key, label, numeric in columns:
        current = sort.lstrip("-") == key
        descending = sort.startswith("-")
        if current:
            following = key if descending else f"-{key}"
        else:
            following = f"-{key}" if key in first_descending else key
        query = _query_without_page(request)
        query["sort"] = following
        result.append(
            {
                "label": label,
                "numeric": numeric,
                "href": f"?{query.urlencode()}",
                "aria_sort": ("descending" if descending else "ascending") if current else "",
            }
        )
    return result


def _cohort_context(course: Course, *, learners: int) -> dict[str, object]:
    """Who has passed by when, and what the class confuses (its best submissions)."""
    shares = cohort.pass_share_by_day(course, learners=learners)
    confusion = cohort.cohort_confusion(course)
    return {
        "pass_share_chart": charts.share_line(
            [(s.day, s.share) for s in shares],
            label=_("Share of learners past the threshold, by day"),
        )
        if shares
        else None,
        "cohort_confusion_chart": charts.confusion_heatmap(
            confusion,
            label=_("What the cohort confuses"),
            true_label=_("true class"),
            predicted_label=_("predicted class"),
        )
        if confusion
        else None,
        "most_confused": cohort.most_confused(confusion) if confusion else [],
    }


@login_required
def similar_submissions(request: HttpRequest, code: str) -> HttpResponse:
    """Pairs of learners whose submissions look copied: evidence to look at, not a verdict."""
    course = selectors.course_for_instructor(request.user, code)
    context = {**instructor_nav(course, "similar"), "report": similarity.similar_pairs(course)}
    return render(request, "courses/similar.html", context)


def _yes_no(flag: bool, score: float | None) -> str:
    """A flag of a score; blank where there is no score to qualify."""
    if score is None:
        return ""
    return _("yes") if flag else _("no")


@login_required
def leaderboard_csv(request: HttpRequest, code: str) -> HttpResponse:
    """UTF-8 with a BOM and CRLF line ends: Excel opens it with the Japanese names intact."""
    course = selectors.course_for_instructor(request.user, code)
    header = [
        _("rank"),
        _("name"),
        _("email"),
        _("best accuracy"),
        _("best is self-reported"),
        _("latest accuracy"),
        _("latest is self-reported"),
        _("latest is untrusted"),
        _("passed"),
        _("submissions"),
        _("last activity"),
    ]
    zone = course.tz
    rows = [
        [
            row.rank if row.best_accuracy is not None else "",
            excel_safe(row.name),
            excel_safe(row.email),
            "" if row.best_accuracy is None else f"{row.best_accuracy:.4f}",
            _yes_no(row.best_self_reported, row.best_accuracy),
            "" if row.latest_accuracy is None else f"{row.latest_accuracy:.4f}",
            _yes_no(row.latest_self_reported, row.latest_accuracy),
            _yes_no(row.latest_untrusted, row.latest_accuracy),
            _("yes") if row.passed else _("no"),
            row.submissions,
            row.last_activity.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            if row.last_activity
            else "",
        ]
        for row in selectors.leaderboard(course)
    ]
    stamp = timezone.now().astimezone(zone).strftime("%Y%m%d-%H%M")
    return excel_csv_response(header, rows, f"{course.code}-leaderboard-{stamp}.csv")


@login_required
def submission_browser(request: HttpRequest, code: str) -> HttpResponse:
    course = selectors.course_for_instructor(request.user, code)
    form = SubmissionFilterForm(request.GET or None, learners=selectors.course_learners(course))
    learner_id, status = None, ""
    if form.is_valid():
        learner_id, status = form.cleaned_data["learner"], form.cleaned_data["status"]
    rows = selectors.course_submissions(course, learner_id=learner_id, status=status)
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    # The guide's names for error classes, not the raw codes learners never see.
    titled = [(s, error_title(s.error_class) if s.error_class else "") for s in page]
    query = _query_without_page(request)
    context = {
        **instructor_nav(course, "submissions"),
        "form": form,
        "page": page,
        "titled": titled,
        "query": query.urlencode(),
        "rescorable_count": selectors.rescorable(course).count(),
    }
    return render(request, "courses/submissions.html", context)


@login_required
@require_POST
def rescore_one(request: HttpRequest, code: str, pk: int) -> HttpResponse:
    course = selectors.course_for_instructor(request.user, code)
    submission = Submission.objects.select_related("course").filter(pk=pk, course=course).first()
    if submission is None:
        raise Http404
    if lifecycle.submission_rescore(submission):
        messages.success(request, _("Submission #%(id)d was queued for rescoring.") % {"id": pk})
    else:
        messages.error(
            request, _("Only a finished submission whose zip is still stored can be rescored.")
        )
    if request.POST.get("next"):
        return redirect(_safe_next(request, course))
    return redirect("submission_detail", pk=pk)


@login_required
@require_POST
def rescore_all(request: HttpRequest, code: str) -> HttpResponse:
    course = selectors.course_for_instructor(request.user, code)
    # One conditional update per submission: a run in progress is never touched.
    queued = sum(
        lifecycle.submission_rescore(s)
        for s in selectors.rescorable(course).select_related("course")
    )
    messages.success(request, _("%(n)d submissions were queued for rescoring.") % {"n": queued})
    return redirect("course_submissions", code=course.code)


def _safe_next(request: HttpRequest, course: Course) -> str:
    target = request.POST.get("next", "")
    # Only our own paths: never an open redirect.
    if target.startswith("/") and not target.startswith("//"):
        return target
    return reverse("course_submissions", kwargs={"code": course.code})


@login_required
def course_settings(request: HttpRequest, code: str) -> HttpResponse:
    course = selectors.course_for_instructor(request.user, code)
    # Opening and closing dates are typed and shown in the course's own time zone.
    with timezone.override(course.tz):
        form = CourseSettingsForm(request.POST or None, instance=course)
        if request.method == "POST" and form.is_valid():
            saved = form.save(commit=False)
            saved.save(update_fields=CourseSettingsForm.Meta.fields)
            messages.success(request, _("The course settings were saved."))
            return redirect("course_settings", code=course.code)
        return render(
            request, "courses/settings.html", {**instructor_nav(course, "settings"), "form": form}
        )


@login_required
def testset_upload(request: HttpRequest, code: str) -> HttpResponse:
    course = selectors.course_for_instructor(request.user, code)
    form = TestSetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            testset = _load_uploaded_testset(course, form)
        except ScoringError as error:
            form.add_error(None, error.render(_))
        else:
            messages.success(
                request,
                _("Test set version %(version)d (%(n)d images) is now active.")
                % {"version": testset.version, "n": testset.n},
            )
            return redirect("course_testset", code=course.code)
    context = {
        **instructor_nav(course, "testset"),
        "form": form,
        "testsets": list(course.testsets.order_by("-version")),
    }
    return render(request, "courses/testset.html", context)


def _load_uploaded_testset(course: Course, form: TestSetUploadForm) -> TestSet:
    # Saved under their canonical names: validation messages name the file the instructor knows.
    with tempfile.TemporaryDirectory(prefix="testset-upload-") as tmp:
        paths = {}
        for field, name in (("data", "test_data.npy"), ("labels", "test_label.npy")):
            path = Path(tmp) / name
            with open(path, "wb") as out:
                for chunk in form.cleaned_data[field].chunks():
                    out.write(chunk)
            paths[field] = path
        return testset_load(
            course=course,
            data_path=paths["data"],
            label_path=paths["labels"],
            note=form.cleaned_data["note"],
        )


@login_required
@require_POST
def quota_grant(request: HttpRequest, code: str, enrollment_id: int) -> HttpResponse:
    course = selectors.course_for_instructor(request.user, code)
    enrollment = (
        Enrollment.objects.select_related("user")
        .filter(pk=enrollment_id, course=course, role=Role.LEARNER)
        .first()
    )
    if enrollment is None:
        raise Http404
    form = QuotaGrantForm(request.POST)
    if form.is_valid():
        day = course.day_bounds()[0].date()
        grant = form.save(enrollment=enrollment, granted_by=request.user, day=day)
        messages.success(
            request,
            _("%(name)s got %(n)d extra submissions for today.")
            % {"name": enrollment.user.name, "n": grant.extra},
        )
    else:
        messages.error(request, _("Give a number of extra submissions and a reason."))
    return redirect("leaderboard", code=course.code)
