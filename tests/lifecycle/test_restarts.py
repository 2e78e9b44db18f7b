"""Real restarts of PostgreSQL and of the Docker engine under a running worker.

The other lifecycle tests simulate these (``pg_terminate_backend`` + a refusing proxy;
``docker kill`` + an unreachable DOCKER_HOST) because they run on machines shared with
other sessions. These restart the real services, so they run only where the machine is
the test run's alone: with ``KATAKANA_DESTRUCTIVE_CHAOS=1`` (set by ``.ci/run``). Each
test leaves PostgreSQL and dockerd running, whatever happens.

* PostgreSQL: ``pg_ctlcluster ... restart`` (fast shutdown: every connection of every
  client is terminated, new ones refused until it is back) while a run is in progress.
  A restart shorter than the lease costs no rerun and no result.
* dockerd: SIGTERM (a clean daemon stop: the API goes away and the daemon stops every
  container) while a container runs, then started as scripts/setup starts it. The run
  is ours to retry: the learner is scored once, and no container is left behind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from tests.lifecycle import chaos
from tests.workers import RUN_PREFIX, celery_worker, require_docker, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("KATAKANA_DESTRUCTIVE_CHAOS") != "1",
        reason="restarts the machine's PostgreSQL and dockerd: only where the machine is "
        "ours alone (KATAKANA_DESTRUCTIVE_CHAOS=1, set in CI)",
    ),
]

SANDBOX_IMAGE = "katakana-sandbox:cpu"


def _running(submission) -> bool:  # type: ignore[no-untyped-def]
    submission.refresh_from_db()
    return submission.status == "running" and submission.phase == "running"


def _container_running(name: str) -> bool:
    out = subprocess.run(
        ["docker", "ps", "--filter", f"name=^{name}$", "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return name in out


def _log(life, name: str = "a") -> str:  # type: ignore[no-untyped-def]
    return (life.tmp / f"worker-{name}.log").read_text(errors="replace")


def test_a_real_postgresql_restart_mid_run_costs_no_rerun_and_no_result(lifecycle) -> None:  # type: ignore[no-untyped-def]
    from server.submissions.models import Status

    life = lifecycle
    running = life.submit(sleep=5)
    waiting = life.submit(fail=True)  # queued behind it: a learner's verdict, charged
    # A lease far longer than the restart: the point is that the run survives it.
    env = life.env(KATAKANA_LEASE_SECONDS="15")
    try:
        with celery_worker(life.tmp, env=env, name="a", beat=True):
            wait_until(lambda: _running(running), timeout=40, message="the run to start")
            seconds = chaos.restart_postgresql()
            # The test's own connection died with the others: the next query reconnects
            # (and pytest-django's teardown flush runs on a live connection).
            connection.close()
            assert seconds < 30
            wait_until(life.all_terminal, timeout=60, message="all terminal")
            wait_until(life.emails_sent, timeout=30, message="all emails")
    finally:
        chaos.ensure_postgresql()  # never leave the machine without its database
        connection.close()

    running.refresh_from_db()
    assert running.status == Status.SCORED, (running.error_code, running.detail)
    assert (running.attempts, running.charged) == (1, True)  # no rerun for our restart
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts, waiting.charged) == (Status.FAILED, 1, True)
    # The restart did hit the worker mid-run: its writes went through the retry path.
    log = _log(life)
    assert "database unavailable" in log or "heartbeat failed" in log
    assert "superseded" not in log
    life.assert_settled()


@pytest.fixture
def dockerd_restored() -> Iterator[None]:
    """The Docker engine is running after the test, and the sandbox image is still there."""
    require_docker()
    try:
        yield
    finally:
        chaos.ensure_dockerd()
    image = subprocess.run(["docker", "image", "inspect", SANDBOX_IMAGE], capture_output=True)
    assert image.returncode == 0, f"{SANDBOX_IMAGE} is gone after the dockerd restart"


def test_a_real_dockerd_restart_mid_run_is_retried_not_charged_and_leaves_no_container(
    dockerd_restored: None, lifecycle: Any
) -> None:
    from server.submissions.models import Status

    life = lifecycle
    life.settings.KATAKANA_SANDBOX_BACKEND = "docker"
    dropped = life.submit(sleep=5)
    first = f"{RUN_PREFIX}-sub-{dropped.pk}-a1"
    env = life.env(KATAKANA_SANDBOX_BACKEND="docker")
    with celery_worker(life.tmp, env=env, name="a", beat=True):
        wait_until(lambda: _container_running(first), timeout=60, message="the container")
        stopped = chaos.stop_dockerd()
        started = chaos.start_dockerd()
        assert stopped + started < 60
        wait_until(life.all_terminal, timeout=90, message="all terminal")
        wait_until(life.emails_sent, timeout=30, message="all emails")

    dropped.refresh_from_db()
    # The dropped run was ours: retried, scored once, charged once for that verdict (never
    # a "crashed" verdict for a container the daemon stopped).
    assert dropped.status == Status.SCORED, (dropped.error_code, dropped.detail)
    assert dropped.attempts == 2 and dropped.charged
    life.assert_settled()  # includes: no container of this session's prefix, running or not
