"""Redis and PostgreSQL going away under a running worker strand nothing.

Redis: a private redis-server (port of its own) is SIGKILLed mid-queue and started again,
once with its append-only file (the production setting: the queue survives) and once
without persistence (the queue is gone: the sweeper must notice the QUEUED rows without
messages and publish new ones).

PostgreSQL: the cluster is shared on this machine, so it is not restarted. A restart
does two things to a client, and each is done here to this session's workers only:
(1) every connection is terminated (``pg_terminate_backend`` on the connections carrying
the workers' application_name, exactly what the postmaster does at shutdown), and (2)
for a while new connections are refused (the workers reach PostgreSQL through a TCP
proxy that the test stops and starts). A blip shorter than the lease must cost nothing:
no rerun, no lost result.
"""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings
from django.db import connection

from server.submissions.sweeper import waiting_messages
from tests.lifecycle import chaos
from tests.workers import PG_APPLICATION, celery_worker, wait_until

pytestmark = pytest.mark.slow


def _running(submission) -> bool:  # type: ignore[no-untyped-def]
    submission.refresh_from_db()
    return submission.status == "running" and submission.phase == "running"


@pytest.mark.parametrize("appendonly", [True, False], ids=["aof", "no-persistence"])
def test_a_redis_restart_mid_queue_strands_nothing(lifecycle, private_broker, appendonly) -> None:  # type: ignore[no-untyped-def]
    from server.submissions.models import Status

    redis_server = private_broker(appendonly=appendonly)
    submissions = [lifecycle.submit(sleep=1.5) for _ in range(4)]
    assert waiting_messages() == 4  # published after commit, to this private Redis
    with celery_worker(lifecycle.tmp, env=lifecycle.env(), name="a", beat=True):
        wait_until(lambda: _running(submissions[1]), timeout=40, message="the second run")
        redis_server.kill()
        time.sleep(2)
        redis_server.start()
        wait_until(lifecycle.all_terminal, timeout=60, message="all terminal")
        wait_until(lifecycle.emails_sent, timeout=30, message="all emails")

    for submission in submissions:
        submission.refresh_from_db()
        assert submission.status == Status.SCORED, (submission.error_code, submission.detail)
    if not appendonly:
        # The queue died with Redis: the sweeper published the missing messages.
        log = (lifecycle.tmp / "worker-a.log").read_text()
        assert re.search(r"sweep: SweepReport\(.*requeued=[1-9]", log)
    lifecycle.assert_settled()


def test_a_database_restart_mid_run_costs_no_rerun_and_no_result(lifecycle) -> None:  # type: ignore[no-untyped-def]
    from server.submissions.models import Status

    db = settings.DATABASES["default"]
    proxy = chaos.TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    proxy.start()
    env = lifecycle.env(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@127.0.0.1:{proxy.port}/{db['NAME']}",
        KATAKANA_LEASE_SECONDS="8",
    )
    submissions = [lifecycle.submit(sleep=2) for _ in range(3)]
    try:
        with celery_worker(lifecycle.tmp, env=env, name="a", beat=True):
            # (1) A restart terminates every connection: the claim's, the heartbeat's.
            wait_until(lambda: _running(submissions[0]), timeout=40, message="the first run")
            assert _terminate_worker_connections() >= 1
            # (2) ...and refuses connections while it is down: 3 s, mid-run.
            wait_until(lambda: _running(submissions[1]), timeout=40, message="the second run")
            proxy.stop()
            time.sleep(3)
            proxy.start()
            wait_until(lifecycle.all_terminal, timeout=60, message="all terminal")
            wait_until(lifecycle.emails_sent, timeout=30, message="all emails")
    finally:
        proxy.stop()

    for submission in submissions:
        submission.refresh_from_db()
        assert submission.status == Status.SCORED, (submission.error_code, submission.detail)
        assert submission.attempts == 1  # the run survived the outage: nothing was rerun
    log = (lifecycle.tmp / "worker-a.log").read_text()
    assert "database unavailable" in log or "heartbeat failed" in log
    lifecycle.assert_settled()


def _terminate_worker_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [PG_APPLICATION],
        )
        return int(cursor.fetchone()[0])
