"""Activate a logged-in user's chosen language before Django's LocaleMiddleware runs.

Session middleware runs first, so storing the user's preference in the language
cookie equivalent is enough: LocaleMiddleware reads the cookie and the Accept-Language
header; we override with the saved preference unless the request switches language.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class UserLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The auth middleware has not run yet; read the user lazily from the session.
        if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
            from django.contrib.auth import get_user

            user = get_user(request)
            if user.is_authenticated and getattr(user, "language", None):
                request.COOKIES[settings.LANGUAGE_COOKIE_NAME] = user.language
        return self.get_response(request)
