"""Start real Celery worker (and beat) processes against the test database and broker.

Used by the end-to-end and lifecycle tests: the worker is a separate OS process, so it
sees only what the test committed (tests using it need ``transactional_db``), and it
sends email to files that the test reads back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import redis
from django.conf import settings

REPO = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
# Sandboxes started by this session's workers are named "<prefix>-sub-<id>-a<n>": their
# reaper never touches another session's (or production's) containers on a shared engine.
RUN_PREFIX = f"katakana-t{os.getpid()}"
# PostgreSQL application_name of this session's workers, so a test can cut exactly their
# connections (never another session's) with pg_terminate_backend.
PG_APPLICATION = f"katakana-worker-{os.getpid()}"


def require_docker() -> None:
    """Skip without Docker or its sandbox image, except where CI demands it
    (KATAKANA_REQUIRE_DOCKER=1): the one rule, ``tests.sandbox.conftest.require_backend``."""
    from tests.sandbox.conftest import require_backend

    require_backend("docker")


def flush_broker() -> None:
    # Only this session's queues: other test sessions may share the Redis database.
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(
        settings.KATAKANA_SCORE_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE
    )


def worker_env(tmp: Path, **extra: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "KATAKANA_SUBMISSIONS_DIR": str(settings.KATAKANA_SUBMISSIONS_DIR),
            "KATAKANA_TESTSETS_DIR": str(settings.KATAKANA_TESTSETS_DIR),
            "KATAKANA_RUNS_DIR": str(settings.KATAKANA_RUNS_DIR),
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "KATAKANA_MAIL_DIR": str(tmp / "mail"),
            "KATAKANA_RUN_PREFIX": RUN_PREFIX,
            "PGAPPNAME": PG_APPLICATION,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@contextmanager
def celery_worker(
    tmp: Path,
    *,
    queues: str | None = None,
    env: Mapping[str, str] | None = None,
    name: str = "w1",
    beat: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    log = open(tmp / f"worker-{name}.log", "ab")  # noqa: SIM115 - closed in finally
    queues = queues or f"{settings.KATAKANA_SCORE_QUEUE},{settings.CELERY_TASK_DEFAULT_QUEUE}"
    argv = [
        CELERY,
        "-A",
        "server",
        "worker",
        "-Q",
        queues,
        "-c",
        "1",
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]
    if beat:
        argv += ["-B", "-s", str(tmp / f"beat-{name}")]
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env=worker_env(tmp, **dict(env or {})),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def wait_until(predicate, timeout: float, interval: float = 0.5, message: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
