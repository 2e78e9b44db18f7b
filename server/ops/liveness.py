"""When each background part of the system last showed it is alive, in the broker's Redis.

A generic mechanism: a part calls ``mark("sweeper")`` (or ``mark("sandbox", ok=False,
detail=...)``) and health reads ``last_seen``. Kept in Redis, which every host reaches, so
a worker on a GPU host is seen by the web process; keyed by the deployment's run prefix,
so deployments (or test runs) sharing one Redis never vouch for each other. A lost key
reads as "never seen", which health reports as a fault: the safe side.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from django.conf import settings

from server.ops.broker import KEY_PREFIX, broker_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    age_seconds: float
    ok: bool
    detail: str


def _key() -> str:
    return f"{KEY_PREFIX}liveness:{settings.KATAKANA_RUN_PREFIX}"


def mark(part: str, *, ok: bool = True, detail: str = "") -> None:
    """Record that ``part`` ran just now (and whether it could do its job). Never raises."""
    try:
        value = json.dumps({"at": time.time(), "ok": ok, "detail": detail[:300]})
        broker_redis().hset(_key(), part, value)
    except Exception:  # a health mark must never fail the work it reports on
        log.warning("could not record liveness of %s", part, exc_info=True)


def last_seen(part: str) -> Seen | None:
    """When ``part`` last marked itself, or None if never (or Redis lost it)."""
    raw = broker_redis().hget(_key(), part)
    if not raw:
        return None
    value = json.loads(str(raw))
    return Seen(
        age_seconds=max(0.0, time.time() - float(value["at"])),
        ok=bool(value.get("ok", True)),
        detail=str(value.get("detail", "")),
    )
