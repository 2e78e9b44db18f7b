"""A worker killed or frozen mid-run: the submission is finished once, by someone.

Real ``celery worker`` processes run real sandboxes (the ``process`` backend: the test is
about the worker, not the isolation). Kill modes:

* ``child``: SIGKILL of the pool process running the task (an OOM kill). Celery requeues
  the message (reject on worker lost); the lease expires; the sweeper requeues the
  submission; attempt 2 scores it.
* ``main``: SIGKILL of the worker's main process only. Billiard gives its pool children
  a parent-death signal, so the child dies too: the same as ``group``.
* ``group``: SIGKILL of main and child together (the host died). The message is stuck
  unacked in Redis until the visibility timeout (25 min); instead, the sweeper (beat in
  a fresh worker) requeues the submission from its expired lease and scores it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.lifecycle import chaos
from tests.workers import celery_worker, wait_until

pytestmark = pytest.mark.slow


def _running(submission) -> bool:  # type: ignore[no-untyped-def]
    from server.submissions.models import Status

    submission.refresh_from_db()
    return submission.status == Status.RUNNING and submission.phase == "running"


def _pool_pid(submission) -> int:  # type: ignore[no-untyped-def]
    # The worker field is "<host>:<thread id>"; the task runs in the pool child's main
    # thread, whose thread id is the child's pid.
    return int(submission.worker.rsplit(":", 1)[1])


@pytest.mark.parametrize("victim", ["child", "main", "group"])
def test_a_killed_worker_never_loses_or_duplicates_a_submission(lifecycle, victim) -> None:  # type: ignore[no-untyped-def]
    from server.submissions.models import Status

    first = lifecycle.submit(sleep=3)
    others = [lifecycle.submit(), lifecycle.submit(fail=True)]
    with celery_worker(lifecycle.tmp, env=lifecycle.env(), name="a") as worker:
        wait_until(lambda: _running(first), timeout=40, message="the first run to start")
        child = _pool_pid(first)
        if victim == "child":
            os.kill(child, signal.SIGKILL)
        elif victim == "main":
            os.kill(worker.pid, signal.SIGKILL)
        else:
            chaos.stop_group(worker)
        if victim == "child":
            # The same worker goes on with a fresh pool child; the test is the sweeper.
            wait_until(lambda: _swept(lifecycle.all_terminal), timeout=60, message="all terminal")
        else:
            worker.wait(timeout=10)
            with celery_worker(lifecycle.tmp, env=lifecycle.env(), name="b", beat=True):
                wait_until(lifecycle.all_terminal, timeout=60, message="all terminal")
                wait_until(lifecycle.emails_sent, timeout=30, message="all emails")
        wait_until(lifecycle.emails_sent, timeout=30, message="all emails")
        if victim != "group":
            chaos.stop_group(worker)  # an orphaned pool child, if any

    first.refresh_from_db()
    assert first.status == Status.SCORED, (first.error_code, first.detail)
    # The killed attempt counts against the cap; the second one scored.
    assert first.attempts == 2
    for other in others:
        other.refresh_from_db()
    assert sorted(s.status for s in others) == [Status.FAILED, Status.SCORED]
    wait_until(lambda: not chaos.sandbox_processes(str(lifecycle.sandbox_tmp)), timeout=15)
    lifecycle.assert_settled()
    # One recorded verdict per submission across every worker's log; nothing else won.
    results = [r for log in lifecycle.tmp.glob("worker-*.log") for r in chaos.task_results(log)]
    assert sorted(r for r in results if r in ("scored", "failed")) == ["failed", "scored", "scored"]


def test_a_hung_worker_loses_its_run_and_its_late_result_is_dropped(lifecycle) -> None:  # type: ignore[no-untyped-def]
    """SIGSTOP the worker mid-run: its lease expires, another worker scores the
    submission, and when the first wakes up (SIGCONT) its late result changes nothing."""
    from server.submissions.models import Status

    submission = lifecycle.submit(sleep=2)
    with (
        celery_worker(lifecycle.tmp, env=lifecycle.env(), name="a") as a,
        celery_worker(lifecycle.tmp, env=lifecycle.env(), name="b") as b,
    ):
        wait_until(lambda: _running(submission), timeout=40, message="the run to start")
        owner = _parent_of(_pool_pid(submission))
        hung, spare = (a, b) if owner == a.pid else (b, a)
        assert owner == hung.pid
        with chaos.paused(hung.pid):
            # Lease 3 s: the sweeper gives the run away; the spare worker finishes it.
            wait_until(lambda: _swept(lifecycle.all_terminal), timeout=60, message="rescued")
            submission.refresh_from_db()
            assert submission.status == Status.SCORED and submission.attempts == 2
            assert _parent_of(_pool_pid(submission)) == spare.pid
        hung_log = lifecycle.tmp / f"worker-{'a' if hung is a else 'b'}.log"
        wait_until(lambda: "superseded" in chaos.task_results(hung_log), timeout=30)
        wait_until(lifecycle.emails_sent, timeout=30, message="the email")

    finished_at = submission.finished_at
    submission.refresh_from_db()
    assert submission.finished_at == finished_at  # the late result did not overwrite
    lifecycle.assert_settled()


def _swept(check) -> bool:  # type: ignore[no-untyped-def]
    """Run the sweeper here, as beat would, then check."""
    from server.submissions.sweeper import sweep

    sweep(reap=False)
    return bool(check())


def _parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
