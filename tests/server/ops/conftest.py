"""Fixtures for the ops tests: submissions in any state, with or without a stored zip."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from server.ops import views
from server.submissions.models import Submission
from tests import factories


@pytest.fixture
def make_submission(course, learner) -> Callable[..., Submission]:  # type: ignore[no-untyped-def]
    """``tests.factories.make_submission`` for this course's learner, with a stored zip
    (the ops commands size and purge it) unless ``with_zip=False`` (a purged one)."""

    def make(*, days_old: float = 0, with_zip: bool = True, **fields: Any) -> Submission:
        if not with_zip:
            fields.setdefault("archive", "")
        created_at = timezone.now() - dt.timedelta(days=days_old) if days_old else None
        return factories.make_submission(
            course, learner, with_zip=with_zip, created_at=created_at, **fields
        )

    return make


@pytest.fixture(autouse=True)
def fresh_health_cache() -> None:
    # /healthz reuses a report for a few seconds; each test must see its own checks.
    views._cached.clear()
