"""Fixtures for account tests: Celery tasks run in-process, so invitations reach the outbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def eager_celery() -> Iterator[None]:
    from server.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous
