"""Two real Celery workers on one Redis broker, each bound to its own GPU queue.

Mirrors deploy/compose.yaml: one worker per GPU, ``-Q score-gpu<N>``, concurrency 1,
its own KATAKANA_GPUS. The diagnostic task ``ops.whoami`` writes who consumed each
message into Redis. Every message sent to a GPU's queue must be answered by that GPU's
worker, and a queue nobody is bound to must keep its messages.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from server.celery import app
from server.ops.broker import broker_redis
from server.ops.tasks import WHOAMI_TASK, reply_key

ROOT = Path(__file__).resolve().parents[2]
MESSAGES_PER_QUEUE = 5
DEADLINE_SECONDS = 25.0
GPUS = ("GPU-00000000-test-0000-0000-000000000000", "GPU-11111111-test-1111-1111-111111111111")

pytestmark = pytest.mark.slow


@pytest.fixture
def run_id() -> str:
    # Queue names of this run only: other suites may share the Redis database.
    return secrets.token_hex(4)


@pytest.fixture
def workers(run_id: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Start one worker per GPU; yield {queue: gpu}; stop them (SIGTERM, then SIGKILL)."""
    queues = {f"score-gpu{n}-{run_id}": gpu for n, gpu in enumerate(GPUS)}
    processes = []
    for n, (queue, gpu) in enumerate(queues.items()):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "KATAKANA_GPUS": gpu,
        }
        log = open(tmp_path / f"worker{n}.log", "wb")  # noqa: SIM115 - closed below
        argv = [
            sys.executable, "-m", "celery", "-A", "server", "worker",
            "-Q", queue, "-c", "1", "-n", f"gpu{n}-{run_id}@%h",
            "--without-gossip", "--without-mingle", "--loglevel=WARNING",
        ]  # fmt: skip
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append((process, log))
    try:
        yield queues
    finally:
        for process, _log in processes:
            process.send_signal(signal.SIGTERM)
        for process, log in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def collect(client, reply_id: str, expected: int, deadline: float) -> list[dict]:  # type: ignore[no-untyped-def]
    answers: list[dict] = []
    while len(answers) < expected and time.monotonic() < deadline:
        raw = client.lpop(reply_key(reply_id))
        if raw is None:
            time.sleep(0.1)
        else:
            answers.append(json.loads(raw))
    return answers


def test_each_gpu_worker_consumes_only_its_own_queue(workers, run_id, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = broker_redis()
    unbound = f"score-gpu9-{run_id}"
    # Sent before the workers are ready: both see a backlog on both queues at start-up.
    for queue in [*workers, unbound]:
        for _ in range(MESSAGES_PER_QUEUE):
            app.send_task(WHOAMI_TASK, args=[queue], queue=queue, expires=60)
    deadline = time.monotonic() + DEADLINE_SECONDS
    consumers = {}
    try:
        for queue, gpu in workers.items():
            answers = collect(client, queue, MESSAGES_PER_QUEUE, deadline)
            logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker*.log"))
            assert len(answers) == MESSAGES_PER_QUEUE, f"{queue}: {answers}\n{logs}"
            assert {a["queue"] for a in answers} == {queue}
            assert {tuple(a["gpus"]) for a in answers} == {(gpu,)}
            consumers[queue] = {a["worker"] for a in answers}
            assert len(consumers[queue]) == 1
        assert len(set.union(*consumers.values())) == len(workers)  # two distinct workers
        time.sleep(0.5)  # a duplicate delivery would show up as an extra answer
        assert all(client.llen(reply_key(queue)) == 0 for queue in workers)
        # The queue nobody is bound to still holds every message: no worker strayed.
        assert client.llen(unbound) == MESSAGES_PER_QUEUE
    finally:
        client.delete(unbound, *(reply_key(q) for q in [*workers, unbound]))
