"""``/healthz`` (JSON, 503 when unhealthy, see ``health``) and ``/metrics``.

``/metrics`` needs ``Authorization: Bearer $KATAKANA_METRICS_TOKEN`` and answers 404 while
no token is configured, so a forgotten variable never publishes metrics. ``/healthz`` is
public (uptime monitors) but answers the public only ``{"ok": true|false}``: the checks'
detail (worker names, the last SMTP error, queue sizes) goes only to a request with the
metrics token or a staff login. Its full form broadcasts a Celery ping, so the result is
reused for a few seconds: hammering the URL cannot tie up web workers.
"""

from __future__ import annotations

import hmac
import threading
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from server.ops.health import health_report
from server.ops.metrics import render_metrics

HEALTH_CACHE_SECONDS = 5.0
_cache_lock = threading.Lock()
_cached: dict[str, tuple[float, dict[str, Any]]] = {}


def metrics_token() -> str:
    """The token /metrics and the /healthz detail accept (KATAKANA_METRICS_TOKEN)."""
    return str(settings.KATAKANA_METRICS_TOKEN)


def _cached_report(scope: str) -> dict[str, Any]:
    now = time.monotonic()
    with _cache_lock:
        hit = _cached.get(scope)
        if hit and now - hit[0] < HEALTH_CACHE_SECONDS:
            return hit[1]
    full = scope == "full"
    report = health_report(workers=full, gpus=full, scoring=full)
    with _cache_lock:
        _cached[scope] = (time.monotonic(), report)
    return report


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    # ?scope=live: database and broker only, cheap enough for a container probe.
    scope = "live" if request.GET.get("scope") == "live" else "full"
    report = _cached_report(scope)
    status = 200 if report["ok"] else 503
    if not may_see_detail(request):
        return JsonResponse({"ok": report["ok"]}, status=status)
    return JsonResponse(report, status=status)


def may_see_detail(request: HttpRequest) -> bool:
    """Staff, or a caller with the metrics token (a monitoring system)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return has_metrics_token(request)


def has_metrics_token(request: HttpRequest) -> bool:
    token = metrics_token()
    if not token:
        return False
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_token():
        return HttpResponse(status=404)
    if not has_metrics_token(request):
        response = HttpResponse("unauthorised\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type="text/plain; version=0.0.4; charset=utf-8")
