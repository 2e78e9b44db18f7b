"""Shared fixtures: a small cast of actors and a course with a real (small) test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

N_PER_CLASS_SMALL = 10


@pytest.fixture
def eager_celery():  # type: ignore[no-untyped-def]
    """Celery tasks run in-process (e.g. the outbox's sends, so mail reaches mail.outbox)."""
    from server.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Each test starts with no rate-limit counts (they live in Redis, under this session's
    cache prefix, and would otherwise carry over from test to test within the hour)."""
    from django.conf import settings

    cache = settings.CACHES["default"]
    if not cache["BACKEND"].endswith("RedisCache"):
        return
    import redis

    try:
        client = redis.Redis.from_url(cache["LOCATION"], socket_connect_timeout=1)
        keys = list(client.scan_iter(f"{cache['KEY_PREFIX']}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # Redis down (a chaos test's doing): no counts to clear either


def write_small_testset(directory: Path, per_class: int = N_PER_CLASS_SMALL, seed: int = 0) -> Path:
    """A valid but small hidden test set (class-ordered), for web and service tests."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    classes = np.repeat(np.arange(15), per_class)
    data = np.full((len(classes), 1, 28, 28), 255.0)
    data[:, 0, 8:20, 8:20] = rng.integers(0, 60, size=(len(classes), 12, 12))
    labels = np.eye(15, dtype=np.int32)[classes]
    np.save(directory / "test_data.npy", data)
    np.save(directory / "test_label.npy", labels)
    return directory


@pytest.fixture
def settings_dirs(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.KATAKANA_SUBMISSIONS_DIR = tmp_path / "submissions"
    settings.KATAKANA_TESTSETS_DIR = tmp_path / "testsets"
    settings.KATAKANA_RUNS_DIR = tmp_path / "runs"
    return settings


@pytest.fixture
def course(db, settings_dirs, tmp_path):  # type: ignore[no-untyped-def]
    from server.courses.services import course_create, testset_load

    course = course_create(name="テスト講座", code="dl_test_2026")
    source = write_small_testset(tmp_path / "source")
    testset_load(
        course=course,
        data_path=source / "test_data.npy",
        label_path=source / "test_label.npy",
    )
    return course


def _enrol(course, email: str, role: str):  # type: ignore[no-untyped-def]
    from server.courses.services import enrollment_create

    return enrollment_create(
        course=course, email=email, role=role, name=email.split("@")[0], password="pw-" + email
    ).user


@pytest.fixture
def learner(course):  # type: ignore[no-untyped-def]
    return _enrol(course, "learner@example.com", "learner")


@pytest.fixture
def other_learner(course):  # type: ignore[no-untyped-def]
    return _enrol(course, "other@example.com", "learner")


@pytest.fixture
def instructor(course):  # type: ignore[no-untyped-def]
    return _enrol(course, "instructor@example.com", "instructor")
