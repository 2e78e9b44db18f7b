"""Burst load on one host: N uploads at once, real workers, until every one is terminal.

    python -m bench.lifecycle --n 300 [--learners 30] [--workers 1] [--backend process|docker]

Creates a private database (``test_katakana_bench_<pid>`` on the local PostgreSQL) and
private queues on the local Redis, starts real ``celery worker`` processes (the first
with beat, so the sweeper runs), uploads N small submissions through the real service
as fast as it can (learners round-robin, each allowed N/learners in flight), then waits.
It prints the drain time (first upload to last verdict), queue-wait percentiles (upload
to the start of the run that produced the verdict), and the counts that must match:
results, emails sent (read back from the file backend) and orphans (sandbox processes
or containers left). Not a timed test; ``tests/lifecycle/test_burst.py`` runs it small.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUBMIT_SLEEP_SECONDS = 0.0


@dataclass
class BurstReport:
    n: int
    upload_seconds: float
    drain_seconds: float
    queue_wait: dict[str, float]
    results: int
    statuses: dict[str, int]
    attempts_over_one: int
    outbox_rows: int
    emails_sent: int
    orphans: list[str] = field(default_factory=list)
    first_round_learners: int = 0

    def lines(self) -> list[str]:
        wait = self.queue_wait
        return [
            f"submissions        {self.n} (uploaded in {self.upload_seconds:.1f} s)",
            f"drain time         {self.drain_seconds:.1f} s "
            f"({self.n / max(self.drain_seconds, 1e-9):.2f} verdicts/s)",
            f"queue wait         p50 {wait['p50']:.1f} s, p95 {wait['p95']:.1f} s, "
            f"max {wait['max']:.1f} s",
            f"results            {self.results} {self.statuses}",
            f"retried            {self.attempts_over_one}",
            f"emails             {self.emails_sent} sent, {self.outbox_rows} outbox rows",
            f"orphans            {len(self.orphans)} {self.orphans[:5]}",
            f"fairness           {self.first_round_learners} distinct learners in the first "
            "round of claims",
        ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def run_burst(
    *,
    n: int,
    learners: int,
    tmp: Path,
    workers: int = 1,
    backend: str = "process",
    timeout: float = 3600.0,
    upload_first: bool = False,
) -> BurstReport:
    """Run one burst against the configured database; Django must be set up.

    Each learner's uploads come in a row (the worst case for fairness). With
    ``upload_first`` the whole burst is queued before the workers start, so the claim
    order alone decides who is served first.
    """
    from django.conf import settings

    from server.outbox.models import OutboxEmail
    from server.submissions.models import Status, Submission
    from tests.lifecycle import chaos
    from tests.workers import RUN_PREFIX, celery_worker, flush_broker, wait_until

    course, people = _course_and_learners(n, learners)
    sandbox_tmp = tmp / "sbx"
    sandbox_tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "KATAKANA_SANDBOX_BACKEND": backend,
        "KATAKANA_SWEEP_SECONDS": "5",
        "KATAKANA_REQUEUE_GRACE_SECONDS": "30",
        "TMPDIR": str(sandbox_tmp),
    }
    settings.KATAKANA_SANDBOX_BACKEND = backend
    flush_broker()
    zip_bytes = chaos.submission_zip(tmp / "zips", sleep=SUBMIT_SLEEP_SECONDS).read_bytes()
    per_learner = math.ceil(n / len(people))

    def upload_all() -> float:
        started = time.monotonic()
        for index in range(n):
            _upload(course, people[index // per_learner], zip_bytes)
        return time.monotonic() - started

    with ExitStack() as stack:
        uploaded = upload_all() if upload_first else 0.0
        for index in range(workers):
            stack.enter_context(celery_worker(tmp, env=env, name=f"bench{index}", beat=index == 0))
        if not upload_first:
            uploaded = upload_all()

        def terminal() -> bool:
            return not Submission.objects.in_flight().filter(course=course).exists()

        wait_until(terminal, timeout=timeout, interval=1.0, message="every verdict")

        def mailed() -> bool:
            return not OutboxEmail.objects.filter(
                submission__course=course, sent_at__isnull=True, skipped=False
            ).exists()

        wait_until(mailed, timeout=120, interval=1.0, message="every email")
    flush_broker()

    rows = list(Submission.objects.filter(course=course).order_by("started_at"))
    # From the first upload, or from when the workers could start when uploaded first.
    first_upload = min(r.created_at for r in rows)
    if upload_first:
        first_upload = min(r.started_at for r in rows if r.started_at)
    last_verdict = max(r.finished_at for r in rows if r.finished_at)
    waits = [(r.started_at - r.created_at).total_seconds() for r in rows if r.started_at]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    first_round = {r.learner_id for r in rows[: len(people)]}
    orphans = [str(pid) for pid in chaos.sandbox_processes(str(sandbox_tmp))]
    if backend == "docker":
        orphans += chaos.containers(RUN_PREFIX)
    return BurstReport(
        n=n,
        upload_seconds=uploaded,
        drain_seconds=(last_verdict - first_upload).total_seconds(),
        queue_wait={
            "p50": percentile(waits, 50),
            "p95": percentile(waits, 95),
            "max": max(waits, default=0.0),
        },
        results=sum(1 for r in rows if r.status in (Status.SCORED, Status.FAILED, Status.ERROR)),
        statuses=statuses,
        attempts_over_one=sum(1 for r in rows if r.attempts > 1),
        outbox_rows=OutboxEmail.objects.filter(submission__course=course).count(),
        emails_sent=len(chaos.mailed_addresses(tmp / "mail")),
        orphans=orphans,
        first_round_learners=len(first_round),
    )


def _course_and_learners(n: int, learners: int) -> tuple[Any, list[Any]]:
    from server.courses.services import course_create, enrollment_create, testset_load
    from tests.conftest import write_small_testset

    code = f"bench_{uuid.uuid4().hex[:8]}"
    course = course_create(name="負荷試験", code=code)
    course.daily_quota = n
    course.max_in_flight = math.ceil(n / learners)
    course.save(update_fields=["daily_quota", "max_in_flight"])
    source = write_small_testset(Path(tempfile.mkdtemp(prefix="bench-testset-")))
    testset_load(
        course=course, data_path=source / "test_data.npy", label_path=source / "test_label.npy"
    )
    people = [
        enrollment_create(
            course=course,
            email=f"{code}-{i}@example.com",
            role="learner",
            name=f"L{i}",
            password="pw",
        ).user
        for i in range(learners)
    ]
    return course, people


def _upload(course: Any, learner: Any, zip_bytes: bytes) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from server.submissions.intake import submission_create

    upload = SimpleUploadedFile("submit.zip", zip_bytes, "application/zip")
    submission_create(learner=learner, course=course, upload=upload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backend", choices=["process", "docker"], default="process")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="katakana-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault(
        "DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/katakana_bench_{os.getpid()}"
    )
    os.environ["DJANGO_EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
    os.environ["KATAKANA_MAIL_DIR"] = str(tmp / "mail")
    os.environ.setdefault("KATAKANA_VAR_DIR", str(tmp / "var"))
    import django

    django.setup()
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        report = run_burst(
            n=args.n, learners=args.learners, tmp=tmp, workers=args.workers, backend=args.backend
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print("\n".join(report.lines()))
    print(f"logs               {tmp}")
    ok = report.results == args.n == report.emails_sent and not report.orphans
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
