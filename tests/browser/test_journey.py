"""One end-to-end journey in Debian's Chromium: upload → live result with charts → leaderboard.

A learner logs in, drops a real trained model's zip on the upload form and lands on its
page; the test then scores it in-process (``run_scoring`` with the process backend, no
Celery) while the page polls, and the result with its SVG charts must appear without a
reload. An instructor then sees the leaderboard and downloads the CSV; both switch to
English and see the same pages in English. Screenshots go
to ``artifacts/browser-*.png`` (CI keeps them).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed"),
]


@pytest.fixture
def learnable_course(course, tmp_path):  # type: ignore[no-untyped-def]
    """The course with a test set a small trained net scores well on (not random noise)."""
    from server.courses.services import testset_load
    from tests.learner_models import make_dataset, write_data_dir

    x, t = make_dataset(20, seed=1)
    data_dir = write_data_dir(tmp_path / "hidden", x, t)
    testset_load(
        course=course, data_path=data_dir / "test_data.npy", label_path=data_dir / "test_label.npy"
    )
    return course


@pytest.fixture
def submission_zip(tmp_path) -> Path:  # type: ignore[no-untyped-def]
    from tests.learner_models import build_verified_numpy, make_dataset, trained_params, zip_folder

    x, t = make_dataset(60, seed=0)
    folder = build_verified_numpy(tmp_path / "mine", trained_params(x, t, epochs=10))
    return zip_folder(folder, tmp_path / "submit_folder.zip")


def _off_the_loop(function: Callable[..., Any], *args: Any) -> Any:
    """Run ORM work in a plain thread: Playwright's sync API keeps an event loop in this one."""
    from django.db import connections

    def call() -> Any:
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def _log_in(page, base: str, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", "pw-" + email)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_a_learner_sees_a_live_result_and_an_instructor_downloads_the_csv(
    live_server, settings, learnable_course, learner, instructor, submission_zip
):
    sync_api = pytest.importorskip("playwright.sync_api")
    from server.submissions.models import Status, Submission
    from server.submissions.scoring import run_scoring

    settings.KATAKANA_SANDBOX_BACKEND = "process"
    ARTIFACTS.mkdir(exist_ok=True)
    course = learnable_course
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="ja-JP")
            _log_in(page, live_server.url, learner.email)
            assert page.url.endswith(f"/courses/{course.code}/")
            quota = page.get_by_test_id("quota").inner_text()
            assert re.match(
                r"本日の残り投稿回数 3/3 — 00:00 JST にリセット（あと (\d+時間)?\d+分）", quota
            )

            # The browser refuses a file that is not a zip before sending anything.
            page.set_input_files(
                "input[type=file]",
                files=[
                    {
                        "name": "model.pickle",
                        "mimeType": "application/octet-stream",
                        "buffer": b"not a zip",
                    }
                ],
            )
            assert (
                page.get_by_test_id("client-error").inner_text()
                == ".zip ファイルを選んでください。"
            )
            page.click("#upload-button")
            # Nothing was sent: the button did not switch to "uploading", no server error shows.
            assert page.locator("#upload-button").inner_text() == "アップロード"
            assert page.get_by_test_id("upload-error").count() == 0
            page.set_input_files("input[type=file]", str(submission_zip))
            assert page.get_by_test_id("client-error").is_hidden()
            size_kb = submission_zip.stat().st_size / 1024
            assert page.get_by_test_id("fileinfo").inner_text() == (
                f"submit_folder.zip ({size_kb:.1f} KB)"
            )
            page.screenshot(path=str(ARTIFACTS / "browser-upload.png"), full_page=True)
            page.click("#upload-button")
            page.wait_for_url(re.compile(r"/submissions/\d+/$"))
            pk = int(page.url.rstrip("/").rsplit("/", 1)[1])
            assert page.locator("ol.steps li.current").inner_text() == "順番待ち"

            # The page keeps polling while the worker runs; it must swap in the result.
            assert _off_the_loop(run_scoring, pk) == "scored"
            submission = _off_the_loop(lambda: Submission.objects.get(pk=pk))
            assert submission.status == Status.SCORED and submission.accuracy > 0.8
            heatmap = page.get_by_test_id("confusion-heatmap")
            heatmap.wait_for(timeout=20_000)
            assert heatmap.locator("rect").count() == 225
            assert heatmap.bounding_box()["width"] > 300  # laid out, not just in the DOM
            assert page.get_by_test_id("per-class-chart").locator("rect").count() == 15
            assert page.get_by_test_id("history-chart").locator("circle").count() == 1
            assert page.get_by_test_id("accuracy").inner_text() == f"{submission.accuracy:.4f}"
            assert page.get_by_test_id("status").inner_text() == "採点済み"
            page.screenshot(path=str(ARTIFACTS / "browser-learner-result.png"), full_page=True)

            teacher = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ja-JP")
            _log_in(teacher, live_server.url, instructor.email)
            assert teacher.url.endswith(f"/courses/{course.code}/leaderboard/")
            board = teacher.get_by_test_id("leaderboard")
            assert learner.name in board.inner_text()
            assert f"{submission.accuracy:.4f}" in board.inner_text()
            teacher.get_by_test_id("distribution-chart").wait_for()
            teacher.screenshot(
                path=str(ARTIFACTS / "browser-instructor-leaderboard.png"), full_page=True
            )
            with teacher.expect_download() as download_info:
                teacher.get_by_test_id("csv-link").click()
            csv_bytes = Path(download_info.value.path()).read_bytes()
            assert csv_bytes.startswith(b"\xef\xbb\xbf")
            text = csv_bytes.decode("utf-8-sig")
            assert "\r\n" in text and learner.email in text
            assert np.isclose(
                float(text.split("\r\n")[1].split(",")[3]), submission.accuracy, atol=1e-4
            )

            # The language switch: the same pages in English, for both people.
            teacher.click("button[name=language][value=en]")
            teacher.wait_for_url(re.compile(rf"/courses/{course.code}/leaderboard/$"))
            assert teacher.locator("html").get_attribute("lang") == "en"
            header = teacher.get_by_test_id("leaderboard").locator("thead").inner_text()
            assert "Learner" in header and "受講生" not in header
            assert teacher.get_by_test_id("csv-link").inner_text() == "Download CSV (Excel)"
            page.click("button[name=language][value=en]")
            page.wait_for_load_state("networkidle")
            assert page.get_by_test_id("status").inner_text() == "scored"
            page.screenshot(path=str(ARTIFACTS / "browser-learner-result-en.png"), full_page=True)
        finally:
            browser.close()
