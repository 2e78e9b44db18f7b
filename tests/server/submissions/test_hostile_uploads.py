"""Hostile uploads on the web host (issue 13, items 1-3), through Django's test client
on PostgreSQL: each attack is refused with its own message, not charged, leaves no file
behind, and costs the web process no memory (measured while the request runs)."""

from __future__ import annotations

import html
import io
import json
import random
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from server.submissions.models import Status, Submission
from tests.factories import make_submission
from tests.server.courses.web import notebook_zip

MB = 1 << 20
PREDICT = "def predict(test_data):\n    return [0] * len(test_data)\n"


def _login(client, user):  # type: ignore[no-untyped-def]
    user.language = "en"
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def _upload(client, course, data: bytes, name: str = "submit_folder.zip"):  # type: ignore[no-untyped-def]
    archive = SimpleUploadedFile(name, data, "application/zip")
    return client.post(reverse("course", args=[course.code]), {"archive": archive})


def _stored_files(settings) -> list[Path]:  # type: ignore[no-untyped-def]
    root = Path(settings.KATAKANA_SUBMISSIONS_DIR)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@contextmanager
def _peak_rss_growth() -> Iterator[dict[str, int]]:
    """Sample this process's RSS every 10 ms while the block runs; yields the growth."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    result = {"bytes": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            result["bytes"] = max(result["bytes"], process.memory_info().rss - baseline)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()


def _zip(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _notebook(*cells: str) -> bytes:
    return json.dumps(
        {"nbformat": 4, "cells": [{"cell_type": "code", "source": c} for c in cells]}
    ).encode()


def _assert_refused(response, settings, code: str) -> Submission:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    assert 'data-testid="upload-error"' in response.content.decode()
    refused = Submission.objects.get()
    assert (refused.status, refused.charged, refused.error_code) == (
        Status.REJECTED,
        False,
        code,
    )
    assert not refused.archive  # the row is kept, the bytes are not
    assert _stored_files(settings) == []
    return refused


# --- item 1: bzip2 / LZMA bombs -----------------------------------------------------------


def test_a_bzip2_bomb_is_refused_naming_its_method_at_no_memory_cost(
    client, course, learner, settings
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("kadai/submit_katakana.ipynb", _notebook(PREDICT))
        with archive.open(_bzip2_info("kadai/weights.npy"), "w", force_zip64=True) as member:
            for _ in range(64):
                member.write(bytes(4 * MB))  # 256 MB of zeros in a few hundred bytes
    assert len(buffer.getvalue()) < 5_000
    with _peak_rss_growth() as growth:
        response = _upload(_login(client, learner), course, buffer.getvalue())
    assert "kadai/weights.npy is compressed with bzip2" in response.content.decode()
    _assert_refused(response, settings, "archive_unsupported_compression")
    assert growth["bytes"] < 64 * MB, growth


def _bzip2_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_BZIP2
    return info


# --- item 2: what ast.parse costs the web host ----------------------------------------------


def test_code_that_would_take_gigabytes_to_parse_is_refused_within_the_limits(
    client, course, learner, settings
):
    # 1.2 M numbers parsed into as many AST nodes: over 1 GiB in the request before.
    # Random, so that the zip does not look like a bomb to the ratio check.
    numbers = random.Random(0).choices(range(1000), k=1_200_000)
    code = PREDICT + "A = [" + ",".join(map(str, numbers)) + "]\n"
    data = _zip({"kadai/submit_katakana.ipynb": _notebook(code)})
    started = time.monotonic()
    with _peak_rss_growth() as growth:
        response = _upload(_login(client, learner), course, data)
    assert time.monotonic() - started < 20
    assert (
        "submit_katakana.ipynb is too large or too deeply nested for the server to read"
        in response.content.decode()
    )
    _assert_refused(response, settings, "entry_too_complex")
    assert growth["bytes"] < 64 * MB, growth


def test_code_that_would_hold_the_request_for_minutes_is_stopped_at_the_cpu_limit(
    client, course, learner, settings
):
    # Nested brackets are slow to parse (0.4 s for these 115 KB), and each line the
    # tolerant parser repairs parses the cell again: 20 repairs in each of 5 cells held
    # the request for about 40 s before, on little memory.
    settings.KATAKANA_INTAKE_CPU_SECONDS = 2
    nested = ("x = " + "[" * 190 + "]" * 190 + "\n") * 300
    cells = [PREDICT] + [nested + "y = !ls\n" * 20] * 5
    data = _zip({"kadai/submit_katakana.ipynb": _notebook(*cells)})
    started = time.monotonic()
    response = _upload(_login(client, learner), course, data)
    assert time.monotonic() - started < 10
    assert "could not be checked within the server's limits (2 seconds, 512 MB)" in html.unescape(
        response.content.decode()
    )
    _assert_refused(response, settings, "entry_check_limit")


def test_an_ordinary_notebook_still_passes_the_bounded_check(client, course, learner, settings):
    response = _upload(_login(client, learner), course, notebook_zip())
    assert response.status_code == 302
    submission = Submission.objects.get()
    assert (submission.status, submission.entry) == (Status.QUEUED, "submit_katakana.ipynb")
    assert [p.name for p in _stored_files(settings)] == [Path(submission.archive.name).name]


# --- item 3: refusals cost nothing and store nothing ----------------------------------------


def test_refused_junk_uploads_leave_nothing_on_disk(client, course, learner, settings):
    junk = b"PK\x03\x04" + bytes(5 * MB)
    _login(client, learner)
    for _ in range(2):
        response = _upload(client, course, junk)
        assert response.status_code == 200
    assert Submission.objects.filter(status=Status.REJECTED, charged=False).count() == 2
    assert _stored_files(settings) == []


def test_quota_is_checked_before_the_intake_runs(client, course, learner, settings):
    for _ in range(3):
        make_submission(course, learner)
    before = Submission.objects.count()
    response = _upload(_login(client, learner), course, b"PK\x03\x04" + bytes(MB))
    assert "You have used all 3 submissions for today." in response.content.decode()
    # Refused as over quota, not examined: no REJECTED row, no file.
    assert Submission.objects.count() == before
    assert _stored_files(settings) == []


def test_a_learner_past_the_storage_cap_is_refused_before_anything_is_stored(
    client, course, learner, settings
):
    settings.KATAKANA_LEARNER_STORAGE_MB = 1
    course.daily_quota = 10
    course.max_in_flight = 10
    course.save(update_fields=["daily_quota", "max_in_flight"])
    model = random.Random(0).randbytes(600_000)
    data = _zip(
        {"kadai/submit_katakana.ipynb": _notebook(PREDICT), "kadai/model.npy": model},
        zipfile.ZIP_STORED,
    )
    _login(client, learner)
    assert _upload(client, course, data).status_code == 302
    response = _upload(client, course, data)
    assert response.status_code == 200
    assert (
        "Your stored submissions take 0 MB, and this file would pass the limit of 1 MB"
        in response.content.decode()
    )
    assert Submission.objects.count() == 1
    assert len(_stored_files(settings)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_zip_whose_row_does_not_commit_is_deleted_again(
    client, course, learner, settings, monkeypatch
):
    from django.db import OperationalError

    real_save = Submission.save

    def failing_save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.pk is None and self.status == Status.QUEUED:
            raise OperationalError("database is locked")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Submission, "save", failing_save)
    _login(client, learner)
    with pytest.raises(OperationalError):
        _upload(client, course, notebook_zip())
    assert not Submission.objects.exists()
    assert _stored_files(settings) == []
