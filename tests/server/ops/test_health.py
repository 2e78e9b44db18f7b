"""/healthz and the health command, against the real PostgreSQL and Redis."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from server.ops import views
from server.submissions.models import Status

# The ops routes alone: these tests must not depend on the rest of the site's views.
pytestmark = pytest.mark.urls("server.ops.urls")

# Nothing listens on port 1: a broker that is really down, not a mocked one.
DEAD_BROKER = "redis://127.0.0.1:1/0"
TOKEN = "ops-test-token"


@pytest.fixture(autouse=True)
def detail_client(client, settings):  # type: ignore[no-untyped-def]
    """These tests read the checks' detail: they call as a monitor, with the token."""
    settings.KATAKANA_METRICS_TOKEN = TOKEN
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


@pytest.mark.django_db
def test_healthz_reports_database_broker_and_queue_when_all_is_up(client, make_submission) -> None:
    import datetime as dt

    from django.utils import timezone

    from server.ops import liveness

    liveness.mark("sweeper")
    make_submission(status=Status.QUEUED, days_old=0.01)
    # Work in progress (a live lease): the 14-minute wait is a busy queue, not a stall.
    make_submission(status=Status.RUNNING, lease_until=timezone.now() + dt.timedelta(seconds=30))
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"]
    assert checks["queue"]["queued"] == 1 and checks["queue"]["running"] == 1
    assert 800 < checks["queue"]["oldest_queued_age_seconds"] < 900
    # Reported but never fatal: workers restart while the web keeps queueing uploads.
    assert set(checks["workers"]) >= {"ok", "count", "names"}
    assert set(checks["gpus"]) >= {"visible", "configured"}
    assert checks["scoring"] == {
        "ok": True,
        "stalled": False,
        "sweeper_ok": True,
        "sweeper_last_run_age_seconds": checks["scoring"]["sweeper_last_run_age_seconds"],
        "sandbox_ok": True,
    }


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_down(client, settings) -> None:
    settings.CELERY_BROKER_URL = DEAD_BROKER
    response = client.get("/healthz?scope=live")
    body = response.json()
    assert response.status_code == 503
    assert body["ok"] is False and body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert "workers" not in body["checks"]  # the live scope never broadcasts


@pytest.mark.django_db
def test_a_rescore_does_not_count_as_an_old_queued_upload(client, make_submission) -> None:
    make_submission(status=Status.QUEUED, days_old=30, generation=2)
    queue = client.get("/healthz?scope=live").json()["checks"]["queue"]
    assert queue["queued"] == 1 and queue["queued_rescores"] == 1
    assert queue["oldest_queued_age_seconds"] is None


@pytest.mark.django_db
def test_health_command_prints_json_and_exits_1_when_the_broker_is_down(settings) -> None:
    out = StringIO()
    call_command("health", "--skip-workers", "--skip-gpus", stdout=out)
    assert json.loads(out.getvalue())["ok"] is True
    settings.CELERY_BROKER_URL = DEAD_BROKER
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("health", "--skip-workers", "--skip-gpus", stdout=out)
    assert exit_.value.code == 1
    assert json.loads(out.getvalue())["checks"]["broker"]["ok"] is False


def _owe_email(submission, *, minutes_old: float = 0, attempts: int = 0, error: str = ""):  # type: ignore[no-untyped-def]
    import datetime as dt

    from django.utils import timezone

    from server.outbox.models import OutboxEmail

    email = OutboxEmail.objects.create(
        submission=submission,
        generation=submission.generation,
        kind="result",
        to="learner@example.com",
        attempts=attempts,
        last_error=error,
    )
    OutboxEmail.objects.filter(pk=email.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=minutes_old)
    )
    return email


@pytest.mark.django_db
def test_the_email_check_is_ok_while_emails_are_fresh_and_warns_when_they_are_stuck(
    client, make_submission, settings
) -> None:
    _owe_email(make_submission(), minutes_old=2)
    email = client.get("/healthz?scope=live").json()["checks"]["email"]
    assert email["ok"] is True and email["unsent"] == 1 and email["failed"] == 0

    _owe_email(make_submission(), minutes_old=40, attempts=5, error="SMTPConnectError: 421")
    views._cached.clear()  # /healthz reuses a report for a few seconds
    response = client.get("/healthz?scope=live")
    email = response.json()["checks"]["email"]
    assert email["ok"] is False and email["unsent"] == 2
    assert 2300 < email["oldest_unsent_age_seconds"] < 2500
    assert email["last_error"] == "SMTPConnectError: 421"
    # Reported, never fatal: uploads are still accepted and scored meanwhile.
    assert response.status_code == 200 and response.json()["ok"] is True


@pytest.mark.django_db
def test_an_email_given_up_on_fails_the_email_check(client, make_submission, settings) -> None:
    _owe_email(make_submission(), attempts=settings.KATAKANA_EMAIL_MAX_ATTEMPTS, error="550")
    email = client.get("/healthz?scope=live").json()["checks"]["email"]
    assert email["ok"] is False and email["failed"] == 1 and email["unsent"] == 0
