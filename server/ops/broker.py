"""A direct Redis client on the Celery broker, for health pings and shared counters.

Workers on every host already reach this Redis, so it is where per-run metrics are
accumulated (``server.ops.metrics``): the web process reads them at scrape time without
any worker having to expose a port. Short timeouts: a health check must answer quickly
even when Redis does not.
"""

from __future__ import annotations

import redis
from django.conf import settings

KEY_PREFIX = "katakana:ops:"
SOCKET_TIMEOUT_SECONDS = 2.0


def broker_redis(*, timeout: float = SOCKET_TIMEOUT_SECONDS) -> redis.Redis:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"the broker is not Redis: {url.split('://', 1)[0]}://")
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
    )
