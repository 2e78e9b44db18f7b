"""Issue 13, item 9: beat is its own process, and sweeps never wait behind scoring.

``scripts/demo`` ran beat inside the worker (``-B``): a killed worker left its beat
running, so a restart ran two schedulers, and sweeps and emails waited behind a long
run on the one worker. Now the demo runs beat as its own process with a pidfile (as
production runs one ``beat`` service), and a worker of its own for the ``default`` queue.
These tests start the real processes (celery beat and workers, Redis, PostgreSQL)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

from server.ops import liveness
from server.submissions.models import Status
from tests.workers import CELERY, REPO, celery_worker, wait_until, worker_env

pytestmark = pytest.mark.slow
DEMO = (REPO / "scripts" / "demo").read_text()


def test_the_demo_runs_beat_on_its_own_with_a_pidfile_and_no_worker_runs_beat() -> None:
    celery_lines = re.findall(r"celery -A server (?:[^\n]|\\\n)*", DEMO)
    assert not any(re.search(r"\s-B\b|--beat\b", line) for line in celery_lines)
    beat = [line for line in celery_lines if line.startswith("celery -A server beat")]
    assert len(beat) == 1 and "--pidfile" in beat[0]
    queues = [re.search(r"-Q (\S+)", line)[1] for line in celery_lines if " worker " in line]  # type: ignore[index]
    # Scoring and everything else never share a worker: sweeps and emails are never behind.
    assert sorted(queues) == ["default", "score"]


@contextmanager
def celery_beat(tmp: Path, pidfile: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    log = open(tmp / "beat.log", "ab")  # noqa: SIM115 - closed in finally
    argv = [CELERY, "-A", "server", "beat", "-s", str(tmp / "beat-schedule"),
            "--pidfile", str(pidfile), "--loglevel=INFO"]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, env=worker_env(tmp, **env), stdout=log, stderr=log, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_a_second_beat_is_refused_while_the_first_lives(lifecycle) -> None:  # type: ignore[no-untyped-def]
    pidfile = lifecycle.tmp / "celerybeat.pid"
    env = lifecycle.env()
    with celery_beat(lifecycle.tmp, pidfile, env) as first:
        wait_until(pidfile.exists, 30, message="the first beat's pidfile")
        (lifecycle.tmp / "second").mkdir()
        with celery_beat(lifecycle.tmp / "second", pidfile, env) as second:
            assert second.wait(timeout=60) != 0, "a second beat ran beside the first"
        assert first.poll() is None
        os.kill(first.pid, signal.SIGKILL)  # as a crash would: the pidfile stays behind
        first.wait()
    assert pidfile.exists()
    (lifecycle.tmp / "third").mkdir()
    with celery_beat(lifecycle.tmp / "third", pidfile, env) as third:
        # The stale pidfile of a dead beat does not block its replacement.
        wait_until(lambda: pidfile.read_text().strip() == str(third.pid), 30, message="restart")
        assert third.poll() is None


def test_sweeps_keep_running_while_the_scoring_worker_is_busy(lifecycle) -> None:  # type: ignore[no-untyped-def]
    env = lifecycle.env(KATAKANA_SANDBOX_BACKEND="process")
    submission = lifecycle.submit(sleep=25)
    with (
        celery_beat(lifecycle.tmp, lifecycle.tmp / "beat.pid", env),
        celery_worker(lifecycle.tmp, queues=settings.KATAKANA_SCORE_QUEUE, env=env, name="score"),
        celery_worker(
            lifecycle.tmp, queues=settings.CELERY_TASK_DEFAULT_QUEUE, env=env, name="default"
        ),
    ):

        def running() -> bool:
            submission.refresh_from_db()
            return submission.status == Status.RUNNING

        wait_until(running, 60, message="the long run to start")
        ages = []
        for _ in range(10):  # while the only scoring worker is busy for 25 s
            time.sleep(1)
            seen = liveness.last_seen("sweeper")
            ages.append(seen.age_seconds if seen else None)
        submission.refresh_from_db()
        assert submission.status == Status.RUNNING  # still busy all along
    print(f"sweeper ages while scoring was busy: {ages}")
    assert all(age is not None and age < 3 for age in ages), ages
