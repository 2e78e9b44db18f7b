"""Celery tasks: each takes plain ids and calls one service; each is safe to run twice.

The scoring message carries a submission id only as a hint: the worker claims the
fairest QUEUED submission (``lifecycle.submission_claim``), so messages are fungible and
a lost or duplicated one never loses or duplicates work.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import shared_task
from celery.exceptions import Reject
from django.conf import settings

from server.ops import liveness
from server.submissions import routing, scoring, sweeper

log = logging.getLogger(__name__)


# The registered name (routing.SCORE_TASK) stays "score_submission" so messages already
# queued by an older release still find their task after an upgrade; the function says
# what it does.
@shared_task(name=routing.SCORE_TASK, bind=True)
def score_next(self: Any, hint_id: int) -> str:
    """Score the fairest queued submission (``hint_id`` is only preferred among equals)."""
    # The node name (-n cpu@host) says which worker ran it, where several share a host.
    worker = f"{self.request.hostname or scoring.worker_name()}:{threading.get_native_id()}"
    try:
        return scoring.run_scoring(hint_id, worker=worker)
    except scoring.WorkerUnhealthy as exc:
        # Nothing was claimed. Pause (this worker is useless until its engine is back),
        # then hand the message back so a healthy worker, or this one later, takes it.
        log.warning("worker unhealthy, handing the message back: %s", exc)
        liveness.mark("sandbox", ok=False, detail=str(exc))  # /healthz says why
        time.sleep(settings.KATAKANA_RETRY_SECONDS)
        raise Reject(str(exc), requeue=True) from exc


@shared_task(name="submissions.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    liveness.mark("sweeper")  # /healthz reports a sweeper (beat) that stopped
    return vars(sweeper.sweep())
