"""Issue 13, items 10 and 12, in the web process against the real PostgreSQL and Redis:
work that waits with nothing moving, or a sweeper that stopped, is reported by /healthz,
/metrics and both banners within KATAKANA_SCORING_STALL_SECONDS; the public /healthz says
up or down only, its detail needs the metrics token or a staff login.

The same with real workers (one that cannot reach Docker, a missing beat) is
``tests/lifecycle/test_stalled_scoring.py``."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from server.ops import liveness
from server.outbox.models import OutboxEmail
from server.submissions.models import Status
from server.submissions.selectors import queue_health

TOKEN = "ops-scoring-token"
SMTP_SECRET = "SMTPAuthenticationError: 535 user relay@uni.example.ac.jp"


@pytest.fixture(autouse=True)
def short_stall(settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_SCORING_STALL_SECONDS = 120
    settings.KATAKANA_SWEEPER_STALE_SECONDS = 60
    settings.KATAKANA_METRICS_TOKEN = TOKEN
    # Its own deployment key in Redis: another test run's sweeper never vouches for this one.
    settings.KATAKANA_RUN_PREFIX = f"katakana-t-health-{id(settings)}"


def _detail(client, path: str = "/healthz"):  # type: ignore[no-untyped-def]
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def _queued_upload(make_submission, minutes_old: float):  # type: ignore[no-untyped-def]
    return make_submission(status=Status.QUEUED, days_old=minutes_old / 1440)


# ---------------------------------------------------------------------------- item 12


@pytest.mark.django_db(transaction=True)
def test_the_public_healthz_of_the_real_server_says_up_or_down_only(
    live_server, make_submission, settings
) -> None:
    liveness.mark("sweeper")
    email = OutboxEmail.objects.create(
        submission=make_submission(), generation=1, kind="result", to="a@example.com",
        attempts=3, last_error=SMTP_SECRET,
    )  # fmt: skip
    url = live_server.url + "/healthz"
    public = requests.get(url, timeout=10)
    assert public.status_code == 200
    assert public.json() == {"ok": True}
    assert "SMTP" not in public.text and "relay" not in public.text
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.json() == {"ok": True}
    monitor = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    checks = monitor.json()["checks"]
    assert checks["email"]["last_error"] == SMTP_SECRET
    assert "names" in checks["workers"]
    email.delete()


@pytest.mark.django_db
def test_healthz_detail_is_for_staff_not_for_other_users(client, learner, settings) -> None:
    settings.KATAKANA_METRICS_TOKEN = ""  # no token configured: staff only
    liveness.mark("sweeper")
    assert set(client.get("/healthz?scope=live").json()) == {"ok"}
    client.force_login(learner)
    assert set(client.get("/healthz?scope=live").json()) == {"ok"}
    staff = get_user_model().objects.create_user(
        email="ops@example.com", password="x", is_staff=True
    )
    client.force_login(staff)
    assert set(client.get("/healthz?scope=live").json()) == {"ok", "checks"}


# ---------------------------------------------------------------------------- item 10


@pytest.mark.django_db
def test_an_upload_waiting_with_nothing_moving_is_reported_stalled_everywhere(
    client, make_submission, course, learner, instructor
) -> None:
    liveness.mark("sweeper")
    _queued_upload(make_submission, minutes_old=1)
    assert not queue_health().stalled  # one minute: within the stall window
    _queued_upload(make_submission, minutes_old=3)
    assert queue_health().stalled
    response = _detail(client)
    assert response.status_code == 503
    assert response.json()["checks"]["scoring"]["stalled"] is True
    from server.ops import views

    views._cached.clear()
    assert client.get("/healthz").json() == {"ok": False}  # the public answer: down
    metrics = _detail(client, "/metrics").content.decode()
    assert "katakana_scoring_stalled 1.0" in metrics
    learner.language = "en"
    learner.save(update_fields=["language"])
    client.force_login(learner)
    page = client.get(reverse("course", args=[course.code])).content.decode()
    assert 'data-testid="stalled-banner"' in page and "Scoring is delayed" in page
    learner.language = "ja"
    learner.save(update_fields=["language"])
    page = client.get(reverse("course", args=[course.code])).content.decode()
    assert "採点が遅れています" in page  # learners read it in their language
    client.force_login(instructor)
    page = client.get(reverse("leaderboard", args=[course.code])).content.decode()
    assert 'data-testid="stalled-banner"' in page


@pytest.mark.django_db
def test_a_long_queue_that_moves_is_busy_not_stalled(make_submission) -> None:
    liveness.mark("sweeper")
    _queued_upload(make_submission, minutes_old=30)
    make_submission(status=Status.RUNNING, lease_until=timezone.now() + dt.timedelta(seconds=30))
    assert not queue_health().stalled


@pytest.mark.django_db
def test_an_expired_lease_nobody_reclaims_means_the_sweeper_is_down(make_submission) -> None:
    make_submission(status=Status.RUNNING, lease_until=timezone.now() - dt.timedelta(minutes=3))
    assert queue_health().stalled


@pytest.mark.django_db
def test_instructors_see_why_scoring_is_in_trouble(client, course, instructor) -> None:
    instructor.language = "en"
    instructor.save(update_fields=["language"])
    client.force_login(instructor)
    leaderboard = reverse("leaderboard", args=[course.code])
    page = client.get(leaderboard).content.decode()  # no sweeper has run in this deployment
    assert 'data-testid="scoring-trouble-banner"' in page
    assert "Celery beat" in page
    liveness.mark("sweeper")
    liveness.mark("sandbox", ok=False, detail="docker engine unavailable")
    page = client.get(leaderboard).content.decode()
    assert "Celery beat" not in page
    assert "cannot reach its sandbox engine" in page
    liveness.mark("sandbox")
    assert 'data-testid="scoring-trouble-banner"' not in client.get(leaderboard).content.decode()


@pytest.mark.django_db
def test_a_sweeper_that_stopped_fails_health_within_its_stale_window(client, settings) -> None:
    from server.ops import views

    scoring = _detail(client).json()["checks"]["scoring"]
    assert scoring["sweeper_ok"] is False and scoring["sweeper_last_run_age_seconds"] is None
    liveness.mark("sweeper")
    views._cached.clear()
    assert _detail(client).json()["checks"]["scoring"]["sweeper_ok"] is True
    settings.KATAKANA_SWEEPER_STALE_SECONDS = 0.5
    import time

    time.sleep(0.6)
    views._cached.clear()
    response = _detail(client)
    assert response.status_code == 503
    assert response.json()["checks"]["scoring"]["sweeper_ok"] is False
    assert "katakana_sweeper_up 0.0" in _detail(client, "/metrics").content.decode()


@pytest.mark.django_db
def test_a_worker_that_cannot_reach_its_engine_is_named_in_health(client) -> None:
    liveness.mark("sweeper")
    liveness.mark("sandbox", ok=False, detail="docker engine unavailable: connection refused")
    scoring = _detail(client).json()["checks"]["scoring"]
    assert scoring["sandbox_ok"] is False
    assert "connection refused" in scoring["sandbox_error"]
    assert json.loads(json.dumps(scoring))  # plain JSON
