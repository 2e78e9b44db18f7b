"""Celery signal handlers: count every scoring task as it ends (see ``metrics``)."""

from __future__ import annotations

import contextvars
from typing import Any

from celery.signals import task_postrun

from server.ops.metrics import record_score_task
from server.submissions.routing import SCORE_TASK

# The submission the scoring task actually claimed (``scoring.run_scoring`` sets it): the
# fair claim may choose another row than the message's hint.
CLAIMED_SUBMISSION: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "claimed_submission", default=None
)


@task_postrun.connect(dispatch_uid="katakana-ops-score-metrics")
def count_score_task(
    sender: Any = None,
    args: tuple[Any, ...] | None = None,
    kwargs: dict[str, Any] | None = None,
    retval: Any = None,
    **_: Any,
) -> None:
    if getattr(sender, "name", None) != SCORE_TASK:
        return
    # The row the task claimed, which the fair claim may have chosen over the message's.
    claimed = CLAIMED_SUBMISSION.get()
    CLAIMED_SUBMISSION.set(None)
    submission_id = claimed or (args[0] if args else (kwargs or {}).get("submission_id"))
    if submission_id is None:
        return
    # A task that raised has the exception as its retval.
    outcome = str(retval) if isinstance(retval, str) else "exception"
    record_score_task(int(submission_id), outcome)
