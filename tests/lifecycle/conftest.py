"""Fixtures for the lifecycle (chaos) tests: a course, learners, real workers, the checks.

The workers are real ``celery worker`` processes (``tests.workers``) on the real test
database, with short lease / sweep / retry timings so a lost worker is noticed in
seconds. The test process runs the same settings, so a test may sweep by itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from kombu import pools as kombu_pools

from server.celery import app
from tests.lifecycle import chaos
from tests.workers import RUN_PREFIX, flush_broker

# Short timings, the same in the workers and in the test process.
TIMINGS = {
    "KATAKANA_LEASE_SECONDS": "3",
    "KATAKANA_SWEEP_SECONDS": "1",
    "KATAKANA_RETRY_SECONDS": "1",
    "KATAKANA_REQUEUE_GRACE_SECONDS": "2",
    "KATAKANA_EMAIL_RETRY_SECONDS": "0.5",
    "KATAKANA_SANDBOX_BACKEND": "process",
}


@dataclass
class Lifecycle:
    """One test's world: its course, its directories, how to submit and what to check."""

    course: Any
    tmp: Path
    settings: Any
    _learners: int = 0

    @property
    def mail_dir(self) -> Path:
        return self.tmp / "mail"

    @property
    def sandbox_tmp(self) -> Path:
        return self.tmp / "sbx"

    def env(self, **extra: str) -> dict[str, str]:
        """Worker environment: short timings, sandboxes' scratch under this test's tmp."""
        return {**TIMINGS, "TMPDIR": str(self.sandbox_tmp), **extra}

    def learner(self) -> Any:
        from server.courses.services import enrollment_create

        self._learners += 1
        email = f"learner{self._learners}@example.com"
        return enrollment_create(
            course=self.course, email=email, role="learner", name=email, password="pw"
        ).user

    def submit(
        self, *, sleep: float = 0.0, fail: bool = False, selfkill: bool = False, learner: Any = None
    ) -> Any:
        """Upload through the real service (intake, quota lock, enqueue after commit)."""
        from server.submissions.intake import submission_create

        path = chaos.submission_zip(self.tmp / "zips", sleep=sleep, fail=fail, selfkill=selfkill)
        upload = SimpleUploadedFile("submit.zip", path.read_bytes(), "application/zip")
        return submission_create(
            learner=learner or self.learner(), course=self.course, upload=upload
        )

    def all_terminal(self) -> bool:
        from server.submissions.models import Submission

        return not Submission.objects.in_flight().filter(course=self.course).exists()

    def emails_sent(self) -> bool:
        from server.outbox.models import OutboxEmail

        return not OutboxEmail.objects.filter(
            submission__course=self.course, sent_at__isnull=True, skipped=False
        ).exists()

    def assert_settled(self, *, mailed: list[str] | None = None) -> None:
        """Every submission terminal, one outbox row and one sent email each, the quota
        charged for learner verdicts only, no sandbox left running."""
        from server.outbox.models import OutboxEmail
        from server.submissions.models import Status, Submission

        submissions = list(Submission.objects.filter(course=self.course).select_related("learner"))
        assert submissions
        for submission in submissions:
            assert submission.is_terminal, submission
            assert submission.finished_at is not None
            assert submission.lease_until is None
            # Charged exactly for the learner's own verdicts (SCORED / FAILED).
            assert submission.charged == (submission.status in (Status.SCORED, Status.FAILED))
            rows = OutboxEmail.objects.filter(submission=submission)
            assert [(r.generation, r.sent_at is not None) for r in rows] == [
                (submission.generation, True)
            ], submission
        addresses = chaos.mailed_addresses(self.mail_dir) if mailed is None else mailed
        assert sorted(addresses) == sorted(s.learner.email for s in submissions)
        assert chaos.sandbox_processes(str(self.sandbox_tmp)) == []
        assert chaos.containers(RUN_PREFIX) == []


@pytest.fixture
def lifecycle(transactional_db, settings_dirs, settings, tmp_path) -> Iterator[Lifecycle]:  # type: ignore[no-untyped-def]
    from server.courses.services import course_create, testset_load
    from tests.conftest import write_small_testset

    for name, value in TIMINGS.items():
        setattr(settings, name, float(value) if "." in value else _number(value))
    settings.KATAKANA_RUN_PREFIX = RUN_PREFIX
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    course = course_create(name="講座", code=f"dl_life_{os.getpid()}")
    course.daily_quota = 100
    course.save(update_fields=["daily_quota"])
    source = write_small_testset(tmp_path / "source")
    testset_load(
        course=course, data_path=source / "test_data.npy", label_path=source / "test_label.npy"
    )
    (tmp_path / "sbx").mkdir()
    flush_broker()
    yield Lifecycle(course=course, tmp=tmp_path, settings=settings)
    flush_broker()


def _number(value: str) -> int | str:
    return int(value) if value.isdigit() else value


@pytest.fixture
def private_broker(settings, tmp_path, monkeypatch) -> Iterator[Callable[..., chaos.RedisServer]]:  # type: ignore[no-untyped-def]
    """Point this process's Celery producer (and the sweeper) at a private redis-server."""
    servers: list[chaos.RedisServer] = []
    original, original_setting = app.conf.broker_url, settings.CELERY_BROKER_URL

    def start(*, appendonly: bool) -> chaos.RedisServer:
        server = chaos.RedisServer(tmp_path / "redis", appendonly=appendonly)
        server.start()
        servers.append(server)
        settings.CELERY_BROKER_URL = server.url
        # Celery reads CELERY_BROKER_URL from the environment before its own config.
        monkeypatch.setenv("CELERY_BROKER_URL", server.url)
        _use_broker(server.url)
        return server

    yield start
    settings.CELERY_BROKER_URL = original_setting
    monkeypatch.undo()
    _use_broker(original)
    for server in servers:
        server.kill()


def _use_broker(url: str) -> None:
    # The app caches its connection and producer pools: drop them so the next publish
    # connects to ``url``.
    app.conf.broker_url = url
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    # kombu keeps producer pools in a process-wide registry keyed by connection: the
    # entry for the old URL still wraps the pool closed above ("Acquire on closed pool"
    # in every later test), so drop the registry too.
    kombu_pools.reset()
