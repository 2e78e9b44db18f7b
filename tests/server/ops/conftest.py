"""Fixtures for the ops tests: submissions in any state, with or without a stored zip."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from server.ops import views
from server.submissions.models import Phase, Status, Submission

ZIP_BYTES = b"PK\x05\x06" + b"\x00" * 18  # an empty zip: the ops code never opens it


@pytest.fixture
def make_submission(course, learner) -> Callable[..., Submission]:  # type: ignore[no-untyped-def]
    def make(
        *, status: str = Status.SCORED, days_old: float = 0, with_zip: bool = True, **fields: Any
    ) -> Submission:
        terminal = status not in (Status.QUEUED, Status.RUNNING)
        submission = Submission(
            token=secrets.token_hex(16),
            course=course,
            learner=learner,
            original_name="submit.zip",
            size_bytes=len(ZIP_BYTES),
            sha256="0" * 64,
            status=status,
            phase=Phase.DONE if terminal else Phase.QUEUED,
            testset=course.active_testset,
            **fields,
        )
        if with_zip:
            submission.archive.save("x.zip", ContentFile(ZIP_BYTES), save=False)
        submission.save()
        if days_old:
            # created_at is auto_now_add: back-date it with an update.
            created = timezone.now() - dt.timedelta(days=days_old)
            Submission.objects.filter(pk=submission.pk).update(created_at=created)
            submission.refresh_from_db()
        return submission

    return make


@pytest.fixture(autouse=True)
def fresh_health_cache() -> None:
    # /healthz reuses a report for a few seconds; each test must see its own checks.
    views._cached.clear()
