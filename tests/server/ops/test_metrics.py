"""/metrics: bearer-token protection, gauges from the database, counters kept in Redis."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from celery.signals import task_postrun
from prometheus_client.parser import text_string_to_metric_families

from server.ops import metrics
from server.ops.broker import broker_redis
from server.submissions.models import Status
from server.submissions.tasks import score_next

# The ops routes alone: these tests must not depend on the rest of the site's views.
pytestmark = pytest.mark.urls("server.ops.urls")

TOKEN = "test-metrics-token"


@pytest.fixture
def metrics_key(monkeypatch):  # type: ignore[no-untyped-def]
    # A key of this test's own: workers of other suites may count into the shared one.
    key = f"katakana:ops:test-metrics:{secrets.token_hex(6)}"
    monkeypatch.setattr(metrics, "METRICS_KEY", key)
    yield key
    broker_redis().delete(key)


@pytest.fixture
def token(settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client) -> dict[str, float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


@pytest.mark.django_db
def test_metrics_are_not_served_without_a_configured_token(client, settings) -> None:
    settings.KATAKANA_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.django_db
def test_metrics_refuse_a_missing_or_wrong_token(client, token) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401


@pytest.mark.django_db
def test_metrics_report_queue_length_and_oldest_queued_age(
    client, token, metrics_key, make_submission
) -> None:
    make_submission(status=Status.QUEUED, days_old=1 / 24)
    make_submission(status=Status.QUEUED)
    make_submission(status=Status.SCORED)
    samples = scrape(client)
    assert samples["katakana_submissions_queued{}"] == 2
    assert samples["katakana_submissions_running{}"] == 0
    assert 3500 < samples["katakana_oldest_queued_age_seconds{}"] < 3700
    assert samples["katakana_database_up{}"] == 1 and samples["katakana_broker_up{}"] == 1
    assert samples["katakana_emails_unsent{}"] == 0
    assert samples["katakana_emails_failed{}"] == 0
    assert samples["katakana_oldest_unsent_email_age_seconds{}"] == 0


@pytest.mark.django_db
def test_metrics_count_unsent_and_failed_emails(
    client, token, metrics_key, make_submission, settings
) -> None:
    from server.outbox.models import OutboxEmail

    for attempts in (0, 2, settings.KATAKANA_EMAIL_MAX_ATTEMPTS):
        submission = make_submission()
        OutboxEmail.objects.create(
            submission=submission,
            generation=1,
            kind="result",
            to="l@example.com",
            attempts=attempts,
        )
    sent = make_submission()
    OutboxEmail.objects.create(
        submission=sent,
        generation=1,
        kind="result",
        to="l@example.com",
        sent_at=dt.datetime.now(dt.UTC),
    )
    samples = scrape(client)
    assert samples["katakana_emails_unsent{}"] == 2
    assert samples["katakana_emails_failed{}"] == 1
    assert samples["katakana_oldest_unsent_email_age_seconds{}"] >= 0


@pytest.mark.django_db
def test_a_finished_scoring_task_counts_its_verdict_and_run_duration(
    client, token, metrics_key, make_submission
) -> None:
    finished = dt.datetime(2026, 7, 1, 12, 0, 42, tzinfo=dt.UTC)
    scored = make_submission(
        status=Status.SCORED,
        started_at=finished - dt.timedelta(seconds=42),
        finished_at=finished,
    )
    failed = make_submission(
        status=Status.FAILED,
        error_class="time_limit",
        started_at=finished - dt.timedelta(seconds=601),
        finished_at=finished,
    )
    # The real Celery signal, as the worker sends it after the task returned.
    for submission, retval in ((scored, "scored"), (failed, "failed"), (scored, "not-claimed")):
        task_postrun.send(
            sender=score_next,
            task_id="t",
            task=score_next,
            args=(submission.pk,),
            kwargs={},
            retval=retval,
            state="SUCCESS",
        )
    samples = scrape(client)
    assert samples["katakana_verdicts_total{error_class=none,status=scored}"] == 1
    assert samples["katakana_verdicts_total{error_class=time_limit,status=failed}"] == 1
    assert samples["katakana_score_tasks_total{outcome=not-claimed}"] == 1
    assert samples["katakana_score_tasks_total{outcome=scored}"] == 1
    assert samples["katakana_run_duration_seconds_bucket{le=30.0}"] == 0
    assert samples["katakana_run_duration_seconds_bucket{le=60.0}"] == 1
    assert samples["katakana_run_duration_seconds_bucket{le=600.0}"] == 1
    assert samples["katakana_run_duration_seconds_bucket{le=900.0}"] == 2
    assert samples["katakana_run_duration_seconds_count{}"] == 2
    assert samples["katakana_run_duration_seconds_sum{}"] == pytest.approx(643)


def test_a_task_whose_fair_claim_picked_another_row_counts_that_rows_verdict(
    client, token, metrics_key, make_submission
) -> None:
    from server.ops.signals import CLAIMED_SUBMISSION

    named = make_submission(status=Status.QUEUED)
    ran = make_submission(status=Status.FAILED, error_class="wrong_output")
    CLAIMED_SUBMISSION.set(ran.pk)  # what run_scoring records after winning its claim
    task_postrun.send(
        sender=score_next,
        task_id="t",
        task=score_next,
        args=(named.pk,),
        kwargs={},
        retval="failed",
        state="SUCCESS",
    )
    samples = scrape(client)
    assert samples["katakana_verdicts_total{error_class=wrong_output,status=failed}"] == 1
    assert CLAIMED_SUBMISSION.get() is None  # reset for the next task in this process


@pytest.mark.django_db
def test_metrics_still_answer_when_the_broker_is_down(client, token, settings) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    samples = scrape(client)
    assert samples["katakana_broker_up{}"] == 0
    assert samples["katakana_submissions_queued{}"] == 0
