"""Pages in the signed-in user's stored language; the first signed-in visit stores it.

Runs after the session middleware and before Django's LocaleMiddleware, which reads the
language cookie first: putting the account's language there makes the account win over
a stale cookie or another browser's header. An account that has no language yet takes
the one this request would get (the person's own switch, else their browser's
Accept-Language), so an English browser stays English through login; from then on only
the header switch (``accounts.views.language_set``) or the settings page change it.
"""

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from server.accounts.models import User


class UserLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The auth middleware has not run yet; read the user from the session here.
        user = get_user(request)
        if isinstance(user, User) and user.is_authenticated:
            if not user.language:
                user.language = translation.get_language_from_request(request)
                user.save(update_fields=["language"])
            request.COOKIES[settings.LANGUAGE_COOKIE_NAME] = user.language
        return self.get_response(request)
