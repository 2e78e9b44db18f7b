"""Diagnostic task: which worker consumed a message from which queue, with which GPUs.

``ops.whoami`` answers into a Redis list (the broker's Redis; no result backend is
configured), so an operator (``manage.py check_workers``) or a test can prove that a
worker consumes exactly the queue it is bound to and sees the GPU it was given. It never
touches the database and takes only a short reply key, so it is safe on any queue.
"""

from __future__ import annotations

import json
import os
import re
import socket
from typing import Any

from celery import shared_task
from django.conf import settings

from server.ops.broker import KEY_PREFIX, broker_redis
from server.ops.services import verify_active_testsets

WHOAMI_TASK = "ops.whoami"
REPLY_PREFIX = KEY_PREFIX + "whoami:"
REPLY_TTL_SECONDS = 3600
_REPLY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def reply_key(reply_id: str) -> str:
    if not _REPLY_ID.match(reply_id):
        raise ValueError("reply id must be 1-64 letters, digits, - or _")
    return REPLY_PREFIX + reply_id


@shared_task(name=WHOAMI_TASK, bind=True, ignore_result=True)
def whoami(self: Any, reply_id: str, verify_testsets: bool = False) -> dict[str, Any]:
    """Record this worker's identity; optionally the checksums of its local test sets."""
    delivery = self.request.delivery_info or {}
    answer: dict[str, Any] = {
        "worker": self.request.hostname,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queue": delivery.get("routing_key"),
        "gpus": list(settings.KATAKANA_GPUS),
        "sandbox_backend": settings.KATAKANA_SANDBOX_BACKEND,
        "sandbox_image": settings.KATAKANA_SANDBOX_IMAGE,
    }
    if verify_testsets:
        answer["testsets"] = [check.as_dict() for check in verify_active_testsets()]
    key = reply_key(reply_id)
    client = broker_redis()
    client.rpush(key, json.dumps(answer))
    client.expire(key, REPLY_TTL_SECONDS)
    return answer
