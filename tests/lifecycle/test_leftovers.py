"""Issue 13, item 8: what ``kill -9`` leaves on disk is found and removed, by age, safely.

Each test kills a real process mid-work (the web server during an upload, a worker
during a Docker run) and shows the leftover, then the sweeper's step removing it: never
while it is younger than KATAKANA_LEFTOVER_SECONDS, never a file a row refers to."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from sandbox.outfs import mounts_under
from server.ops.leftovers import remove_leftovers
from server.submissions.models import Status
from server.submissions.sweeper import sweep
from tests.lifecycle import chaos
from tests.workers import REPO, RUN_PREFIX, celery_worker, require_docker, wait_until, worker_env

pytestmark = pytest.mark.slow


def _slow_upload(port: int, megabytes: int) -> None:
    """POST a multipart body of ``megabytes`` to the login page, slowly, with the CSRF
    cookie: the CSRF check parses the body, so Django spools the file to a temp file."""
    session = requests.Session()
    session.get(f"http://127.0.0.1:{port}/login/", timeout=10)
    boundary = "katakanaleftover"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; '
        f'filename="submit.zip"\r\nContent-Type: application/zip\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.putrequest("POST", "/login/")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + (megabytes << 20) + len(tail)))
    connection.putheader("Cookie", cookie)
    connection.endheaders()
    with contextlib.suppress(OSError):  # the server dies under it
        connection.send(head)
        for _ in range(megabytes):
            connection.send(b"\0" * (1 << 20))
            time.sleep(0.05)  # slow enough to be killed half-way
        connection.send(tail)


def test_a_web_server_killed_mid_upload_leaves_a_temp_file_the_sweep_removes(
    transactional_db, settings_dirs, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    web_tmp = tmp_path / "web-tmp"
    web_tmp.mkdir()
    port = chaos.free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO, env=worker_env(tmp_path, TMPDIR=str(web_tmp)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _listening(port), 30, message="the web server")

        def upload() -> None:
            _slow_upload(port, 200)

        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        wait_until(lambda: list(web_tmp.glob("tmp*.upload*")), 30, message="the temp upload")
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        sender.join(timeout=30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    left = list(web_tmp.glob("tmp*.upload*"))
    assert left, "the killed server left no temporary upload behind"
    size = sum(p.stat().st_size for p in left)
    print(f"left by the killed web server: {[p.name for p in left]}, {size / 1e6:.1f} MB")
    monkeypatch.setattr(tempfile, "tempdir", str(web_tmp))
    # Too young: an upload may still be writing it.
    assert remove_leftovers().removed == []
    old = time.time() - settings.KATAKANA_LEFTOVER_SECONDS - settings.CELERY_TASK_TIME_LIMIT
    for path in left:
        os.utime(path, (old, old))
    report = remove_leftovers()
    assert sorted(report.removed) == sorted(str(p) for p in left)
    assert not list(web_tmp.glob("tmp*.upload*"))


def test_a_stored_zip_without_a_row_goes_but_one_with_a_row_stays(
    db, settings_dirs, course, learner, monkeypatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_submission

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    kept = make_submission(course, learner, with_zip=True)
    root = Path(settings.KATAKANA_SUBMISSIONS_DIR)
    partial = root / course.code / "0123456789abcdef.zip"  # a half-copied save, no row
    partial.write_bytes(b"PK\3\4" + b"\0" * 1000)
    old = time.time() - 2 * 3600 - settings.CELERY_TASK_TIME_LIMIT
    for path in (partial, root / kept.archive.name):
        os.utime(path, (old, old))
    fresh = root / course.code / "fedcba9876543210.zip"  # a save in progress
    fresh.write_bytes(b"PK")
    assert remove_leftovers().removed == [str(partial)]
    assert (root / kept.archive.name).exists() and fresh.exists()


def test_a_worker_killed_mid_run_leaves_a_container_run_dir_and_out_mount_the_sweep_removes(
    lifecycle, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    require_docker()
    env = lifecycle.env(KATAKANA_SANDBOX_BACKEND="docker")
    lifecycle.settings.KATAKANA_SANDBOX_BACKEND = "docker"  # the sweep here reaps Docker
    submission = lifecycle.submit(sleep=60)
    runs = Path(settings.KATAKANA_RUNS_DIR)
    with celery_worker(lifecycle.tmp, queues=settings.KATAKANA_SCORE_QUEUE, env=env) as worker:
        wait_until(lambda: bool(mounts_under(runs)), 90, message="the run's /out tmpfs")
        zips = list(lifecycle.sandbox_tmp.glob("katakana-zip-*"))
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert zips, "no temporary copy of the zip was made"
    assert chaos.containers(RUN_PREFIX), "the container died with the worker"
    assert mounts_under(runs) and all(z.exists() for z in zips)
    print(f"after kill -9: {chaos.containers(RUN_PREFIX)}, mounts {mounts_under(runs)}")
    # The sweeper: the lease expires (3 s), the run is reclaimed, the container reaped,
    # the run directory's mount released and the directory removed once it is a minute old.
    monkeypatch.setattr("server.submissions.runs.RUN_DIR_GRACE_SECONDS", 0.0)
    time.sleep(lifecycle.settings.KATAKANA_LEASE_SECONDS + 0.5)
    sweep()
    submission.refresh_from_db()
    assert submission.status == Status.QUEUED and submission.attempts == 1
    assert chaos.containers(RUN_PREFIX) == []
    assert mounts_under(runs) == []
    assert not [p for p in runs.iterdir() if p.name.startswith(f"{RUN_PREFIX}-sub-")]
    monkeypatch.setattr(tempfile, "tempdir", str(lifecycle.sandbox_tmp))
    old = time.time() - settings.KATAKANA_LEFTOVER_SECONDS - settings.CELERY_TASK_TIME_LIMIT
    for path in zips:
        for each in [path, *path.rglob("*")]:
            os.utime(each, (old, old), follow_symlinks=False)
    assert sorted(remove_leftovers().removed) == sorted(str(z) for z in zips)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
