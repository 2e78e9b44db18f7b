"""Issue 13, item 10, with real workers: work that could wait forever is reported.

A worker whose Docker engine is unreachable hands every message back, so an upload stays
queued without limit; with beat down, nothing reclaims or republishes anything. Both
now show within KATAKANA_SCORING_STALL_SECONDS (seconds here, minutes in production) on
/healthz (down; the detail says why), /metrics, and the learner's and instructors' pages.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from server.ops import views
from server.submissions.models import Status
from tests.workers import celery_worker, wait_until

pytestmark = pytest.mark.slow
TOKEN = "stalled-token"


def _health(client: Client) -> tuple[int, dict]:  # type: ignore[type-arg]
    views._cached.clear()
    response = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    return response.status_code, response.json()


def test_an_upload_no_worker_can_score_is_reported_within_the_stall_window(
    lifecycle,
) -> None:  # type: ignore[no-untyped-def]
    s = lifecycle.settings
    s.KATAKANA_METRICS_TOKEN = TOKEN
    s.KATAKANA_SCORING_STALL_SECONDS = 4
    env = lifecycle.env(
        KATAKANA_SANDBOX_BACKEND="docker",
        DOCKER_HOST="unix:///nonexistent/docker.sock",  # the engine this worker cannot reach
    )
    learner = lifecycle.learner()
    submission = lifecycle.submit(learner=learner)
    client = Client()
    with celery_worker(lifecycle.tmp, queues=settings.KATAKANA_SCORE_QUEUE, env=env):

        def reported() -> bool:
            status, body = _health(client)
            scoring = body["checks"]["scoring"]
            return status == 503 and scoring["stalled"] and not scoring["sandbox_ok"]

        wait_until(reported, 60, message="/healthz to report the stall and its cause")
        _, body = _health(client)
        assert "docker" in body["checks"]["scoring"]["sandbox_error"].lower()
        views._cached.clear()
        assert client.get("/healthz").json() == {"ok": False}  # public: down, nothing more
        metrics = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
        assert "katakana_scoring_stalled 1.0" in metrics
        assert "katakana_sandbox_engine_up 0.0" in metrics
        learner.language = "en"
        learner.save(update_fields=["language"])
        client.force_login(learner)
        page = client.get(reverse("course", args=[lifecycle.course.code])).content.decode()
        assert "Scoring is delayed" in page
    submission.refresh_from_db()
    assert submission.status == Status.QUEUED and submission.attempts == 0  # never claimed


def test_a_missing_beat_is_reported_and_a_started_one_clears_it(lifecycle) -> None:  # type: ignore[no-untyped-def]
    s = lifecycle.settings
    s.KATAKANA_METRICS_TOKEN = TOKEN
    s.KATAKANA_SWEEPER_STALE_SECONDS = 5
    client = Client()
    status, body = _health(client)
    assert status == 503 and body["checks"]["scoring"]["sweeper_ok"] is False
    env = lifecycle.env()
    # A worker with beat (the lifecycle tests' layout) on the default queue only.
    with celery_worker(
        lifecycle.tmp, queues=settings.CELERY_TASK_DEFAULT_QUEUE, env=env, beat=True
    ):
        wait_until(lambda: _health(client)[0] == 200, 60, message="the sweeper to be seen")
    # Beat gone: reported once its stale window passes.
    wait_until(lambda: _health(client)[0] == 503, 30, message="the missing sweeper reported")
    assert _health(client)[1]["checks"]["scoring"]["sweeper_ok"] is False
