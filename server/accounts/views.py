"""Account pages: settings (profile, language, API tokens) and the instructors' class-list import.

Login, logout and password reset are Django's views, configured in ``urls.py``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views import i18n as i18n_views
from django.views.decorators.http import require_POST

from server.accounts.forms import ApiTokenForm, LearnerImportForm, ProfileForm
from server.accounts.imports import ImportFileError, learners_import, pending_invitations
from server.accounts.models import User
from server.accounts.tokens import api_token_create, api_token_revoke
from server.courses.models import Course
from server.courses.views import instructor_nav
from server.ratelimits import (
    login_failures_limited,
    login_wait_message,
    password_reset_limited,
    password_reset_wait_message,
)
from server.submissions.selectors import is_instructor


def _settings_page(
    request: HttpRequest,
    *,
    profile_form: ProfileForm | None = None,
    token_form: ApiTokenForm | None = None,
    new_token: str | None = None,
    status: int = 200,
) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    return render(
        request,
        "accounts/settings.html",
        {
            "profile_form": profile_form or ProfileForm(instance=user),
            "token_form": token_form or ApiTokenForm(),
            "tokens": user.api_tokens.all(),
            "new_token": new_token,
            "api_base": settings.SITE_URL + "/api/",
        },
        status=status,
    )


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _settings_page(request)
    form = ProfileForm(request.POST, instance=request.user)
    if not form.is_valid():
        return _settings_page(request, profile_form=form, status=400)
    user = form.save()
    # The account's language applies on every signed-in page (UserLanguageMiddleware);
    # the cookie keeps it on this browser's login page after logging out.
    translation.activate(user.language)
    messages.success(request, _("Your settings have been saved."))
    response = redirect("account_settings")
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        user.language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """The header's language switch: Django's ``set_language`` (cookie and redirect), and
    for a signed-in user the account too, so pages and every email follow the choice."""
    response = i18n_views.set_language(request)
    language = request.POST.get("language", "")
    user = request.user
    if isinstance(user, User) and language in dict(settings.LANGUAGES):
        user.language = language
        user.save(update_fields=["language"])
    return response


@login_required
@require_POST
def api_token_new(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, token_form=form, status=400)
    _token, raw = api_token_create(user=request.user, name=form.cleaned_data["name"])  # type: ignore[arg-type]
    # Rendered in this response only (no redirect): the raw token must never be stored,
    # and the messages framework may keep it in a cookie.
    response = _settings_page(request, new_token=raw)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def api_token_delete(request: HttpRequest, pk: int) -> HttpResponse:
    if not api_token_revoke(user=request.user, token_id=pk):  # type: ignore[arg-type]
        raise Http404
    messages.success(request, _("The token has been revoked."))
    return redirect("account_settings")


@login_required
def learners_import_page(request: HttpRequest, code: str) -> HttpResponse:
    course = get_object_or_404(Course, code=code)
    if not is_instructor(request.user, course):
        raise Http404
    form = LearnerImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        try:
            report = learners_import(
                course=course,
                csv_file=form.cleaned_data["csv_file"],
                invited_by=request.user,  # type: ignore[arg-type]
                resend_invitations=form.cleaned_data["resend_invitations"],
            )
        except ImportFileError as error:
            form.add_error("csv_file", error.message)
    return render(
        request,
        "accounts/learners_import.html",
        {
            **instructor_nav(course, "import"),
            "form": form,
            "report": report,
            "pending": pending_invitations(course),
        },
        status=400 if form.errors else 200,
    )


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset view with a rate limit per address and per client (429 when hit).

    The page says the same whatever the address (known or not), so the limit, which
    counts every well-formed request, tells an attacker nothing about who has an account.
    """

    def form_valid(self, form: Any) -> HttpResponse:
        wait = password_reset_limited(self.request)
        if wait:
            form.add_error(None, password_reset_wait_message(wait))
            response = self.form_invalid(form)
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
        return super().form_valid(form)


class LoginView(auth_views.LoginView):
    """Django's login view with a limit on failed logins per client address (429 when hit).

    django-axes locks one account on one address after a few failures; this stops one
    password tried against many accounts (spraying). Only failures count, and the limit
    is looked at before the password is checked, so a blocked address learns nothing.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = login_failures_limited(request)
        if wait:
            context = self.get_context_data(limited=login_wait_message(wait))
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        login_failures_limited(self.request, count=True)
        return super().form_invalid(form)
