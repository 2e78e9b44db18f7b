"""Prometheus metrics for the scoring server, rendered by the web process at scrape time.

Two sources, both shared by every host, so one scrape of ``/metrics`` sees the whole
system and nothing is lost when a process restarts:

* gauges read from PostgreSQL at scrape time (queue length, oldest queued upload);
* counters and the run-duration histogram kept in Redis hashes, incremented by the
  workers when a scoring task ends (``record_score_task``, from a Celery signal).

The trade-off accepted: counters live in Redis (AOF on), not in each worker's memory,
so workers on GPU hosts need no scrape port and no prometheus multiprocess directory.
A counter only goes back to zero if the Redis data is lost, which Prometheus handles
as an ordinary counter reset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from redis.exceptions import RedisError

from server.ops.broker import KEY_PREFIX, broker_redis
from server.ops.health import check_scoring
from server.ops.selectors import outbox_stats, queue_stats
from server.submissions.models import Status, Submission

log = logging.getLogger(__name__)

METRICS_KEY = KEY_PREFIX + "metrics"
# Seconds; the course limit is 600 s by default, so the top buckets show runs near it.
RUN_SECONDS_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0)
# What the scoring task (tasks.score_next, via scoring.run_scoring) returns; anything else
# is counted as "other", so a surprising return value never creates unbounded labels.
TASK_OUTCOMES = frozenset(
    {"scored", "failed", "error", "queued", "running", "not-claimed", "superseded", "exception"}
)
VERDICT_STATUSES = (Status.SCORED, Status.FAILED, Status.ERROR)


def _bucket_field(upper: float) -> str:
    return f"run_le|{upper:g}"


def record_score_task(submission_id: int, outcome: str) -> None:
    """Count one finished scoring task; for a verdict, also its class and run duration.

    Called in the worker after the task returned, so the row already holds the verdict.
    Never raises: metrics must not turn a recorded result into a task failure.
    """
    outcome = outcome if outcome in TASK_OUTCOMES else "other"
    try:
        fields: dict[str, float] = {f"task|{outcome}": 1}
        row = (
            Submission.objects.filter(pk=submission_id, status__in=VERDICT_STATUSES)
            .values("status", "error_class", "started_at", "finished_at")
            .first()
            if outcome in ("scored", "failed", "error")
            else None
        )
        if row is not None:
            fields[f"verdict|{row['status']}|{row['error_class'] or 'none'}"] = 1
            if row["started_at"] and row["finished_at"]:
                seconds = max(0.0, (row["finished_at"] - row["started_at"]).total_seconds())
                fields["run_count"] = 1
                fields["run_sum"] = seconds
                upper = next((b for b in RUN_SECONDS_BUCKETS if seconds <= b), None)
                if upper is not None:
                    fields[_bucket_field(upper)] = 1
        pipe = broker_redis().pipeline(transaction=True)
        for field, amount in fields.items():
            pipe.hincrbyfloat(METRICS_KEY, field, amount)
        pipe.execute()
    except (RedisError, DatabaseError, ValueError):
        log.warning(
            "metrics: could not record task outcome for submission %s", submission_id, exc_info=True
        )


class KatakanaCollector:
    """Collects the gauges from PostgreSQL and the counters from Redis at scrape time."""

    def collect(self) -> Iterator[Metric]:
        yield from self._database_gauges()
        yield from self._redis_counters()
        yield from self._scoring_gauges()

    def _scoring_gauges(self) -> Iterator[Metric]:
        # The same report as /healthz's "scoring" check (one rule: selectors.scoring_stalled).
        scoring = check_scoring()
        yield GaugeMetricFamily(
            "katakana_scoring_stalled",
            "1 when uploads wait and nothing is being scored (see docs/reliability.md).",
            value=1 if scoring.get("stalled") else 0,
        )
        yield GaugeMetricFamily(
            "katakana_sweeper_up",
            "1 when the sweeper (beat) ran within KATAKANA_SWEEPER_STALE_SECONDS.",
            value=1 if scoring.get("sweeper_ok") else 0,
        )
        yield GaugeMetricFamily(
            "katakana_sandbox_engine_up",
            "0 when a worker recently could not reach its sandbox engine.",
            value=1 if scoring.get("sandbox_ok", True) else 0,
        )

    def _database_gauges(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("katakana_database_up", "1 when PostgreSQL answered the scrape.")
        try:
            stats = queue_stats()
        except DatabaseError:
            log.warning("metrics: database unavailable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "katakana_submissions_queued", "Submissions in status QUEUED.", value=stats.queued
        )
        yield GaugeMetricFamily(
            "katakana_submissions_queued_rescores",
            "Of the queued submissions, those queued by a rescore.",
            value=stats.queued_rescores,
        )
        yield GaugeMetricFamily(
            "katakana_submissions_running", "Submissions in status RUNNING.", value=stats.running
        )
        yield GaugeMetricFamily(
            "katakana_oldest_queued_age_seconds",
            "Seconds since the oldest queued upload (not rescore) was made; 0 when none.",
            value=stats.oldest_queued_age_seconds or 0.0,
        )
        emails = outbox_stats()
        yield GaugeMetricFamily(
            "katakana_emails_unsent",
            "Emails owed (results, invitations, reset links) not sent yet, still being tried.",
            value=emails.unsent,
        )
        yield GaugeMetricFamily(
            "katakana_emails_failed",
            "Emails given up on after KATAKANA_EMAIL_MAX_ATTEMPTS sends; need an operator.",
            value=emails.failed,
        )
        yield GaugeMetricFamily(
            "katakana_oldest_unsent_email_age_seconds",
            "Seconds the oldest unsent email has waited; 0 when none.",
            value=emails.oldest_unsent_age_seconds or 0.0,
        )

    def _redis_counters(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("katakana_broker_up", "1 when Redis answered the scrape.")
        try:
            raw = broker_redis().hgetall(METRICS_KEY)
        except (RedisError, ValueError):
            log.warning("metrics: broker unavailable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        # decode_responses=True: the client returns str, whatever its stubs say.
        values = {str(field): float(value) for field, value in raw.items()}
        tasks = CounterMetricFamily(
            "katakana_score_tasks",
            "Scoring tasks that ended, by what the task returned.",
            labels=["outcome"],
        )
        verdicts = CounterMetricFamily(
            "katakana_verdicts",
            "Terminal verdicts recorded by workers, by status and error class.",
            labels=["status", "error_class"],
        )
        for field, value in sorted(values.items()):
            kind, _, rest = field.partition("|")
            if kind == "task":
                tasks.add_metric([rest], value)
            elif kind == "verdict":
                status, _, error_class = rest.partition("|")
                verdicts.add_metric([status, error_class], value)
        yield tasks
        yield verdicts
        yield self._run_histogram(values)

    @staticmethod
    def _run_histogram(values: dict[str, float]) -> Metric:
        cumulative, buckets = 0.0, []
        for upper in RUN_SECONDS_BUCKETS:
            cumulative += values.get(_bucket_field(upper), 0.0)
            buckets.append((floatToGoString(upper), cumulative))
        buckets.append(("+Inf", values.get("run_count", 0.0)))
        histogram = HistogramMetricFamily(
            "katakana_run_duration_seconds",
            "Wall time from claim to recorded verdict, per scoring run.",
        )
        histogram.add_metric([], buckets=buckets, sum_value=values.get("run_sum", 0.0))
        return histogram


def render_metrics() -> bytes:
    """The Prometheus text exposition of everything above."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KatakanaCollector())  # type: ignore[arg-type]
    return generate_latest(registry)
