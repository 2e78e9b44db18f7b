"""Bearer-token authentication and JSON errors for the HTTP API.

The API authenticates only with personal tokens (``Authorization: Bearer kt_…``) and
ignores session cookies. That is why its views are CSRF-exempt: CSRF forges requests
that a browser sends with the victim's cookies, and a cookie never authenticates here.
Responses are in the token owner's language (``User.language``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from server.accounts.tokens import api_token_authenticate
from server.ratelimits import api_limited, api_token_failures_limited, api_wait_message

View = Callable[..., HttpResponse]


def api_error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    """The API's one error shape: ``{"code": …, "message": …}`` plus optional fields."""
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


def _unauthorised(code: str, message: str) -> JsonResponse:
    response = api_error(401, code, message)
    # RFC 6750: no error attribute when credentials are missing, invalid_token otherwise.
    challenge = 'Bearer realm="api"'
    if code == "invalid_token":
        challenge += ', error="invalid_token"'
    response["WWW-Authenticate"] = challenge
    return response


def _rate_limited(wait: int) -> JsonResponse:
    response = api_error(429, "rate_limited", api_wait_message(wait))
    response["Retry-After"] = str(wait)
    return response


def token_required(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        scheme, _sep, raw = request.headers.get("Authorization", "").partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            return _unauthorised(
                "missing_token",
                _("Send your API token in the header Authorization: Bearer <token>."),
            )
        # Guessing is slowed per client address: look before the database, count after.
        wait = api_token_failures_limited(request)
        if wait:
            return _rate_limited(wait)
        user = api_token_authenticate(raw)
        if user is None:
            api_token_failures_limited(request, count=True)
            return _unauthorised(
                "invalid_token", _("The API token is invalid or has been revoked.")
            )
        # Replace the session user: a cookie that came along must not widen access.
        request.user = user
        with translation.override(user.language_in_use):
            wait = api_limited(request)
            response: HttpResponse = _rate_limited(wait) if wait else view(request, *args, **kwargs)
        response["Content-Language"] = user.language_in_use
        response["Cache-Control"] = "no-store"
        return response

    return csrf_exempt(wrapper)
