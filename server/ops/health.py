"""One health report for the web endpoint, the ``health`` command and container probes.

The database and the broker make the service unhealthy (HTTP 503): without either, no
upload can be accepted. The full report (not ``?scope=live``, the container probe) is
also unhealthy when scoring is stalled (work waits and nothing moves: no worker reaches
its sandbox engine, or none runs) or the sweeper (beat) has stopped: uploads are then
accepted but never scored, which an uptime monitor must see within minutes. Missing
workers or GPUs, and emails that cannot be sent, are reported, not failed; alert on them.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from server.celery import app
from server.ops.broker import broker_redis
from server.ops.liveness import last_seen
from server.ops.selectors import OutboxStats, outbox_stats, queue_stats
from server.submissions.selectors import queue_health

WORKER_PING_TIMEOUT_SECONDS = 1.0
# An email still unsent after this long means SMTP (or every worker) has been failing for
# a while: the default back-off has tried about five times by then.
EMAIL_STALE_SECONDS = 15 * 60
CRITICAL = ("database", "broker", "scoring")
# A sandbox engine failure a worker reported is shown for this long (then it is old news).
SANDBOX_FAILURE_SHOWN_SECONDS = 15 * 60


def check_database() -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return {"ok": False, "error": _short(exc)}
    return {"ok": True, "ms": _ms(started)}


def check_broker() -> dict[str, Any]:
    started = time.monotonic()
    try:
        broker_redis().ping()
    except Exception as exc:  # any failure to reach Redis is the same verdict: down
        return {"ok": False, "error": _short(exc)}
    return {"ok": True, "ms": _ms(started)}


def check_workers(timeout: float = WORKER_PING_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Celery workers that answered a broadcast ping within ``timeout`` seconds."""
    try:
        replies = app.control.ping(timeout=timeout)
    except Exception as exc:  # the broker being down is already reported by check_broker
        return {"ok": False, "count": 0, "names": [], "error": _short(exc)}
    names = sorted(name for reply in replies for name in reply)
    return {"ok": bool(names), "count": len(names), "names": names}


def check_gpus() -> dict[str, Any]:
    """GPUs visible on this host, and those this process is configured to use."""
    # Imported here: the web host has no GPU and must not pay for the import at start-up.
    from sandbox.gpu import list_gpus

    visible = list_gpus()
    configured = list(settings.KATAKANA_GPUS)
    missing = [gpu for gpu in configured if gpu.startswith("GPU-") and gpu not in visible]
    return {"ok": not missing, "visible": visible, "configured": configured, "missing": missing}


def check_queue() -> dict[str, Any]:
    try:
        stats = queue_stats()
    except DatabaseError as exc:
        return {"ok": False, "error": _short(exc)}
    return {
        "ok": True,
        "queued": stats.queued,
        "queued_rescores": stats.queued_rescores,
        "running": stats.running,
        "oldest_queued_age_seconds": (
            round(stats.oldest_queued_age_seconds, 1)
            if stats.oldest_queued_age_seconds is not None
            else None
        ),
    }


def check_scoring() -> dict[str, Any]:
    """Is submitted work being scored? Stalled queue, sweeper (beat), sandbox engines."""
    try:
        stalled = queue_health().stalled
    except DatabaseError as exc:
        return {"ok": False, "error": _short(exc)}
    behind = check_workers_behind_scoring()
    return {"ok": not stalled and behind["sweeper_ok"], "stalled": stalled, **behind}


def check_workers_behind_scoring() -> dict[str, Any]:
    """The sweeper's last run and the last sandbox-engine failure a worker reported."""
    try:
        sweeper = last_seen("sweeper")
        sandbox = last_seen("sandbox")
    except Exception as exc:  # the broker being down is already reported by check_broker
        return {"sweeper_ok": False, "sandbox_ok": True, "error": _short(exc)}
    stale = settings.KATAKANA_SWEEPER_STALE_SECONDS
    failing = sandbox is not None and not sandbox.ok
    failing = (
        failing and sandbox is not None and sandbox.age_seconds <= SANDBOX_FAILURE_SHOWN_SECONDS
    )
    report: dict[str, Any] = {
        "sweeper_ok": sweeper is not None and sweeper.age_seconds <= stale,
        "sweeper_last_run_age_seconds": round(sweeper.age_seconds, 1) if sweeper else None,
        "sandbox_ok": not failing,
    }
    if failing and sandbox is not None:
        report["sandbox_error"] = sandbox.detail
    return report


def check_email() -> dict[str, Any]:
    """The outbox: not ok when an email was given up on or has waited too long."""
    try:
        stats = outbox_stats()
    except DatabaseError as exc:
        return {"ok": False, "error": _short(exc)}
    age = stats.oldest_unsent_age_seconds
    return {
        "ok": not emails_stuck(stats),
        "unsent": stats.unsent,
        "failed": stats.failed,
        "oldest_unsent_age_seconds": round(age, 1) if age is not None else None,
        "last_error": stats.last_error,
    }


def emails_stuck(stats: OutboxStats) -> bool:
    """An email was given up on, or the oldest unsent one has waited too long."""
    age = stats.oldest_unsent_age_seconds
    return stats.failed > 0 or (age is not None and age > EMAIL_STALE_SECONDS)


def email_trouble() -> OutboxStats | None:
    """The outbox's numbers when emails are stuck (for the instructors' banner), else None."""
    stats = outbox_stats()
    return stats if emails_stuck(stats) else None


def health_report(
    *,
    workers: bool = True,
    gpus: bool = True,
    scoring: bool = True,
    worker_timeout: float = WORKER_PING_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Every check's result and an overall ``ok`` (database, broker and, where checked,
    scoring)."""
    checks: dict[str, Any] = {"database": check_database(), "broker": check_broker()}
    if checks["database"]["ok"]:
        checks["queue"] = check_queue()
        checks["email"] = check_email()
    if scoring:
        checks["scoring"] = check_scoring()
    if workers and checks["broker"]["ok"]:
        checks["workers"] = check_workers(worker_timeout)
    if gpus:
        checks["gpus"] = check_gpus()
    return {"ok": all(checks[name]["ok"] for name in CRITICAL if name in checks), "checks": checks}


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _short(exc: BaseException) -> str:
    # Enough to diagnose, never a connection string (they can hold passwords).
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
