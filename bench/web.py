"""Web benchmarks on a real PostgreSQL database (``katakana_bench``, created if missing).

* ``leaderboard``: 500 learners x 50 submissions inserted in bulk; the instructor's
  leaderboard selector and page, server time and number of SQL queries.
* ``upload``: a 100 MB zip POSTed to the learner's course page through Django's own
  upload handling (multipart parser, temporary file, form, ``submission_create``); the
  body is streamed from a file, so the growth of the process's resident memory (sampled
  every 5 ms) is the server's alone.
* ``e2e_scoring`` (used by ``python -m bench sandbox --e2e``): upload accepted
  (``submission_create``) → result stored (``run_scoring``), in-process, no queue wait.

Django is set up here with DEBUG off, a private Celery queue (the published wake-up
messages are deleted afterwards, no worker ever sees them) and private directories.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import os
import secrets
import statistics
import tempfile
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/katakana_bench"
COURSE_CODE = "bench_2026"
Log = Callable[[str], None]


# --------------------------------------------------------------------------- Django


def setup_django(database_url: str = DEFAULT_DATABASE_URL, *, backend: str = "docker") -> Path:
    """Point Django at the bench database (created and migrated) and private paths."""
    var = Path(tempfile.mkdtemp(prefix="katakana-bench-var-"))
    (var / "staticfiles").mkdir()  # WhiteNoise warns on every request without it
    queue = f"bench-score-{secrets.token_hex(4)}"
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="server.settings",
        DJANGO_DEBUG="false",  # no query log kept in memory, as in production
        DJANGO_SECRET_KEY=secrets.token_hex(32),
        DJANGO_ALLOWED_HOSTS="testserver,localhost",
        KATAKANA_VAR_DIR=str(var),
        KATAKANA_SANDBOX_BACKEND=backend,
        KATAKANA_SCORE_QUEUE=queue,
        KATAKANA_DEFAULT_QUEUE=f"{queue}-default",
        KATAKANA_LOG_LEVEL="WARNING",
    )
    _create_database(database_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return var


def _create_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_private_queues() -> None:
    """Delete the wake-up messages published to this run's private queues."""
    from django.conf import settings

    try:
        import redis

        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        client.delete(settings.KATAKANA_SCORE_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE)
    except Exception:  # noqa: BLE001 - Redis down: nothing was published anyway
        pass


def bench_course(testset_dir: Path, *, code: str = COURSE_CODE) -> Any:
    """A fresh course (any earlier bench course of that code is deleted) with a test set."""
    from server.courses.models import Course
    from server.courses.services import course_create, testset_load
    from server.submissions.models import Submission

    old = Course.objects.filter(code=code).first()
    if old is not None:
        Submission.objects.filter(course=old).delete()
        old.delete()
    course = course_create(
        name="ベンチマーク", code=code, daily_quota=1000, max_in_flight=1000, legacy_allowed=True
    )
    testset_load(
        course=course,
        data_path=testset_dir / "test_data.npy",
        label_path=testset_dir / "test_label.npy",
    )
    return course


def enrol(course: Any, email: str, role: str = "learner") -> Any:
    from server.courses.services import enrollment_create

    enrollment = enrollment_create(course=course, email=email, role=role, name=email.split("@")[0])
    return enrollment.user


@contextmanager
def count_queries() -> Iterator[list[int]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    box = [0]
    with CaptureQueriesContext(connection) as captured:
        yield box
    box[0] = len(captured)


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    rank = max(0, int(np.ceil(0.95 * len(ordered))) - 1)
    return {"n": len(ordered), "median": statistics.median(ordered), "p95": ordered[rank]}


# --------------------------------------------------------------------------- leaderboard


def populate(course: Any, learners: int, per_learner: int, log: Log) -> None:
    """Bulk-insert learners, enrollments and scored submissions spread over 30 days."""
    from django.db import connection, transaction

    from server.accounts.models import User
    from server.courses.models import Enrollment
    from server.submissions.models import Phase, Status, Submission

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    tag = secrets.token_hex(3)
    with transaction.atomic():
        users = User.objects.bulk_create(
            User(
                email=f"bench-{tag}-{i}@example.com",
                display_name=f"受講生{i:03d}",
                password="!",  # unusable: nobody logs in as them
            )
            for i in range(learners)
        )
        Enrollment.objects.bulk_create(Enrollment(user=u, course=course) for u in users)
        testset = course.active_testset
        rows = []
        for user in users:
            for _ in range(per_learner):
                rows.append(
                    Submission(
                        token=secrets.token_hex(16),
                        course=course,
                        learner=user,
                        archive="bench/x.zip",
                        original_name="submit.zip",
                        sha256="0" * 64,
                        status=Status.SCORED,
                        phase=Phase.DONE,
                        testset=testset,
                        contract="verified",
                        accuracy=float(rng.uniform(0.5, 0.99)),
                        loss=float(rng.uniform(0.05, 1.5)),
                        untrusted=bool(rng.random() < 0.02),
                    )
                )
        Submission.objects.bulk_create(rows, batch_size=5000)
        with connection.cursor() as cursor:
            # created_at is auto_now_add: spread it afterwards, as real use would.
            cursor.execute(
                "UPDATE submissions_submission SET created_at = now() - random() * "
                "interval '30 days', finished_at = now() WHERE course_id = %s",
                [course.pk],
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    log(
        f"populated {learners} learners x {per_learner} submissions "
        f"in {time.perf_counter() - started:.1f} s"
    )


def leaderboard_bench(
    *, learners: int = 500, per_learner: int = 50, repeat: int = 10, log: Log = print
) -> dict[str, Any]:
    from django.test import Client

    from server.submissions import selectors
    from tests.conftest import write_small_testset

    course = bench_course(write_small_testset(Path(tempfile.mkdtemp(prefix="bench-ts-"))))
    populate(course, learners, per_learner, log)
    instructor = enrol(course, f"instructor-{secrets.token_hex(3)}@example.com", "instructor")
    selector_times, view_times = [], []
    selector_queries = view_queries = 0
    rows = 0
    client = Client()
    client.force_login(instructor)
    url = f"/courses/{course.code}/leaderboard/"
    for i in range(repeat + 1):  # the first call of each warms caches: not counted
        with count_queries() as queries:
            started = time.perf_counter()
            rows = len(selectors.leaderboard(course))
            elapsed = time.perf_counter() - started
        if i:
            selector_times.append(elapsed)
        selector_queries = queries[0]
        with count_queries() as queries:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.status_code
        if i:
            view_times.append(elapsed)
        view_queries = queries[0]
    log(
        f"leaderboard: {rows} rows, selector {statistics.median(selector_times) * 1000:.0f} ms "
        f"({selector_queries} queries), page {statistics.median(view_times) * 1000:.0f} ms "
        f"({view_queries} queries)"
    )
    return {
        "learners": learners,
        "submissions_per_learner": per_learner,
        "rows": rows,
        "selector_seconds": _stats(selector_times),
        "selector_queries": selector_queries,
        "page_seconds": _stats(view_times),
        "page_queries": view_queries,
    }


# --------------------------------------------------------------------------- upload


def big_submission_zip(path: Path, megabytes: int) -> Path:
    """A valid verified submission whose model file is ``megabytes`` of random bytes."""
    from tests.learner_models import notebook

    nb = notebook(
        "import numpy as np\n\n\ndef predict(test_data):\n"
        "    return np.zeros(len(test_data), dtype=np.int64)\n"
    )
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("submit/submit_katakana.ipynb", __import__("json").dumps(nb))
        with archive.open("submit/model.bin", "w", force_zip64=True) as model:
            for _ in range(megabytes):
                model.write(rng.bytes(1 << 20))
    return path


def multipart_body(zip_path: Path, body_path: Path) -> tuple[str, int]:
    """Write a multipart/form-data body with the zip as ``archive``; return type, length."""
    boundary = "----katakana-bench-" + secrets.token_hex(8)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; '
        f'filename="submit.zip"\r\nContent-Type: application/zip\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    with open(body_path, "wb") as out, open(zip_path, "rb") as src:
        out.write(head)
        while chunk := src.read(1 << 20):
            out.write(chunk)
        out.write(tail)
    return f"multipart/form-data; boundary={boundary}", body_path.stat().st_size


def _trim_heap() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: a less exact baseline
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class RssSampler:
    """Peak resident memory of this process while active, sampled every 5 ms."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / (1 << 20)


def upload_bench(*, megabytes: int = 100, repeat: int = 3, log: Log = print) -> dict[str, Any]:
    from django.test import Client
    from django.test.client import ClientHandler

    from server.submissions.models import Submission
    from tests.conftest import write_small_testset

    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    course = bench_course(write_small_testset(work / "testset"), code=f"{COURSE_CODE}_upload")
    zip_path = big_submission_zip(work / "big.zip", megabytes)
    content_type, length = multipart_body(zip_path, work / "body")
    handler = ClientHandler(enforce_csrf_checks=False)
    runs = []
    python_peak_mb = 0.0
    for i in range(repeat + 1):  # the last run again under tracemalloc, not timed
        traced = i == repeat
        learner = enrol(course, f"uploader-{secrets.token_hex(3)}-{i}@example.com")
        client = Client()
        client.force_login(learner)
        cookie = "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())
        _trim_heap()  # freed memory back to the OS: growth is measured from a true baseline
        if traced:
            tracemalloc.start()
        with open(work / "body", "rb") as body, RssSampler() as rss:
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": f"/courses/{course.code}/",
                "SERVER_NAME": "testserver",
                "SERVER_PORT": "80",
                "CONTENT_TYPE": content_type,
                "CONTENT_LENGTH": str(length),
                "HTTP_COOKIE": cookie,
                "wsgi.input": body,
                "wsgi.url_scheme": "http",
                "wsgi.errors": io.StringIO(),
            }
            started = time.perf_counter()
            response = handler(environ)
            elapsed = time.perf_counter() - started
        stored = Submission.objects.filter(course=course, learner=learner).first()
        ok = response.status_code == 302 and stored is not None
        if stored is not None:
            stored.delete()  # never scored: a later claim must not pick it up
        if traced:
            python_peak_mb = tracemalloc.get_traced_memory()[1] / (1 << 20)
            tracemalloc.stop()
            log(
                f"upload {megabytes} MB under tracemalloc: Python heap peak {python_peak_mb:.1f} MB"
            )
            continue
        runs.append({"seconds": elapsed, "rss_growth_mb": rss.growth_mb, "accepted": ok})
        log(
            f"upload {megabytes} MB: {elapsed:.2f} s, RSS +{rss.growth_mb:.1f} MB, "
            f"status {response.status_code}, stored {stored is not None}"
        )
    return {
        "megabytes": megabytes,
        "body_bytes": length,
        "seconds": _stats([r["seconds"] for r in runs]),
        "rss_growth_mb": _stats([r["rss_growth_mb"] for r in runs]),
        "python_heap_peak_mb": python_peak_mb,
        "all_accepted": all(r["accepted"] for r in runs),
        "runs": runs,
    }


# --------------------------------------------------------------------------- end to end


def e2e_scoring(
    samples: list[Any], testset: Path, *, reps: int, backends: tuple[str, ...], log: Log = print
) -> list[dict[str, Any]]:
    """Upload accepted → result stored, through the real services, per sample and backend."""
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile

    from server.submissions import intake, scoring
    from server.submissions.models import Submission
    from server.submissions.runs import sandbox_backend

    course = bench_course(testset, code=f"{COURSE_CODE}_e2e")
    # The claim takes the fairest QUEUED row of the whole database: leave only ours.
    Submission.objects.filter(status__in=["queued", "running"]).delete()
    runs = []
    for backend_name in backends:
        settings.KATAKANA_SANDBOX_BACKEND = backend_name
        for rep in range(-1, reps):  # rep -1: warm-up (and the warm pool's first fill)
            for sample in samples:
                learner = enrol(course, f"e2e-{secrets.token_hex(4)}@example.com")
                backend = sandbox_backend()
                wait_full = getattr(backend, "wait_until_full", None)
                if wait_full is not None:
                    wait_full(240.0)
                upload = SimpleUploadedFile(
                    "submit.zip", sample.zip_path.read_bytes(), "application/zip"
                )
                started = time.perf_counter()
                submission = intake.submission_create(learner=learner, course=course, upload=upload)
                accepted = time.perf_counter()
                status = scoring.run_scoring(submission.pk, worker="bench")
                stored = time.perf_counter()
                row = Submission.objects.get(pk=submission.pk)
                log(
                    f"e2e {'warm-up' if rep < 0 else f'rep {rep + 1}'} {sample.name:18} "
                    f"{backend_name:11} {status:8} accept {accepted - started:.2f}s "
                    f"score {stored - accepted:.2f}s ({row.backend})"
                )
                if rep >= 0:
                    runs.append(
                        {
                            "sample": sample.name,
                            "mode": backend_name,
                            "backend": row.backend,
                            "status": row.status,
                            "accept": accepted - started,
                            "score": stored - accepted,
                            "e2e": stored - started,
                        }
                    )
    drop_private_queues()
    return runs
