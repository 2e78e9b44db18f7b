"""Rate limits on what is cheap to ask for and costly to serve, counted in the shared cache.

Failed logins per account are django-axes' (``settings.AXES_*``). These cover what axes
does not:

* failed logins per client address, across accounts: axes locks an (email, address)
  pair, so one password tried once against every account from one address was never
  stopped (password spraying). Counted apart from axes and far higher than its 5,
  because a whole class may sit behind one NAT and mistype at once;
* failed API tokens per client address: a token guesser costs a database look-up per
  try and was never slowed;

* password reset: per email address, so the form cannot be used to flood one learner's
  mailbox (or our SMTP reputation), and per client address, generously, because a whole
  class may sit behind one university NAT;
* uploads, per learner: every upload is received, spooled and checked (extraction, a
  parsing child), rejected ones too, while the daily quota only counts accepted ones: a
  loop of broken 200 MB zips would keep the web host busy at no quota cost;
* the HTTP API, per token owner: a polling script gone wrong.

Counters are django-ratelimit's fixed windows in Redis (``CACHES["default"]``), shared by
every web process. If the cache cannot be reached the limit fails open and logs: a Redis
outage must not lock learners out of the site.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import ngettext
from django_ratelimit.core import get_usage

log = logging.getLogger(__name__)

Key = Callable[[str, HttpRequest], str]


def client_ip(request: HttpRequest) -> str:
    """The client's address: the proxy's X-Forwarded-For when behind Caddy (which
    replaces any value a client sent), else the socket's peer."""
    if settings.KATAKANA_BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return str(request.META.get("REMOTE_ADDR") or "0.0.0.0")


def _limited(
    request: HttpRequest, group: str, key: str | Key, rate: str, *, increment: bool = True
) -> int | None:
    """Count one use (or only look, without ``increment``); the seconds to wait when
    over ``rate``, else None."""
    if not rate:
        return None
    try:
        usage: dict[str, Any] | None = get_usage(
            request, group=group, key=key, rate=rate, increment=increment
        )
    except Exception as exc:  # noqa: BLE001 - redis errors, DNS: fail open, never lock out
        log.warning("rate limit %s not checked: %s: %s", group, type(exc).__name__, exc)
        return None
    if usage is None:
        return None
    # Counting, the use that passes the limit is refused; looking, a count already at
    # the limit refuses (N failures are allowed, not N + 1).
    over = usage["should_limit"] if increment else usage["count"] >= usage["limit"]
    if not over:
        return None
    return max(1, int(usage["time_left"]))


def _user_key(group: str, request: HttpRequest) -> str:
    return str(request.user.pk)


def _posted_email(group: str, request: HttpRequest) -> str:
    return request.POST.get("email", "").strip().lower()


def password_reset_limited(request: HttpRequest) -> int | None:
    """Seconds to wait before another reset email may be asked for, else None."""
    per_address = _limited(
        request, "password-reset-email", _posted_email, settings.KATAKANA_RATE_PASSWORD_RESET
    )
    per_client = _limited(
        request, "password-reset-ip", "ip", settings.KATAKANA_RATE_PASSWORD_RESET_IP
    )
    return max(per_address or 0, per_client or 0) or None


def upload_limited(request: HttpRequest) -> int | None:
    """Seconds before this learner may upload again, else None (web form and API)."""
    return _limited(request, "upload", _user_key, settings.KATAKANA_RATE_UPLOAD)


def api_limited(request: HttpRequest) -> int | None:
    """Seconds before this token owner may call the API again, else None."""
    return _limited(request, "api", _user_key, settings.KATAKANA_RATE_API)


def login_failures_limited(request: HttpRequest, *, count: bool = False) -> int | None:
    """Seconds before this client address may try to log in again, else None. Only
    failures are counted (``count=True`` after one): logging in is never limited."""
    return _limited(
        request, "login-failure-ip", "ip", settings.KATAKANA_RATE_LOGIN_FAILURES_IP,
        increment=count,
    )  # fmt: skip


def api_token_failures_limited(request: HttpRequest, *, count: bool = False) -> int | None:
    """Seconds before this client address may present an API token again, else None.
    Only invalid tokens are counted (``count=True`` after one)."""
    return _limited(
        request, "api-token-failure-ip", "ip", settings.KATAKANA_RATE_API_TOKEN_FAILURES_IP,
        increment=count,
    )  # fmt: skip


def _minutes(seconds: int) -> int:
    return max(1, -(-seconds // 60))  # rounded up: "wait 1 minute" for 5 seconds


def upload_wait_message(seconds: int) -> str:
    return ngettext(
        "You have uploaded many files in a short time. Please check your zip with the "
        "local check (katakana-check, see the guide) and upload again in %(minutes)d minute.",
        "You have uploaded many files in a short time. Please check your zip with the "
        "local check (katakana-check, see the guide) and upload again in %(minutes)d minutes.",
        _minutes(seconds),
    ) % {"minutes": _minutes(seconds)}


def api_wait_message(seconds: int) -> str:
    return ngettext(
        "Too many API requests. Please wait %(seconds)d second and try again.",
        "Too many API requests. Please wait %(seconds)d seconds and try again.",
        seconds,
    ) % {"seconds": seconds}


def login_wait_message(seconds: int) -> str:
    return ngettext(
        "Too many failed logins from your network. Please wait %(minutes)d minute and try again.",
        "Too many failed logins from your network. Please wait %(minutes)d minutes and try again.",
        _minutes(seconds),
    ) % {"minutes": _minutes(seconds)}


def password_reset_wait_message(seconds: int) -> str:
    return ngettext(
        "Too many password reset requests. Please wait %(minutes)d minute and try again.",
        "Too many password reset requests. Please wait %(minutes)d minutes and try again.",
        _minutes(seconds),
    ) % {"minutes": _minutes(seconds)}
