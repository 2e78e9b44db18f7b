"""End-to-end journeys in Debian's Chromium: upload → live result with charts → leaderboard;
a first visit that finds the template and the checker; an English learner through login,
pages and the result email; the learner pages on a 390 × 844 phone, measured in the page.

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


# Measured in the page, not read from CSS: the document's overflow past the viewport,
# every rendered text's size in CSS px (SVG text scaled by the chart's own transform),
# and badges that wrapped onto several lines.
MEASURE = """() => {
  const doc = document.documentElement;
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest("title, script, style")) continue;
    if (!el.getClientRects().length) continue;  // not rendered
    let size = parseFloat(getComputedStyle(el).fontSize);
    if (el instanceof SVGElement) {
      const m = el.getScreenCTM();
      size *= m ? Math.hypot(m.a, m.b) : 1;
    }
    if (size < 11) small.push([el.tagName, node.textContent.trim().slice(0, 30), size]);
  }
  const wrapped = [...document.querySelectorAll(".badge")]
    .filter((b) => b.getClientRects().length > 1
      || b.getBoundingClientRect().height > 2 * parseFloat(getComputedStyle(b).fontSize))
    .map((b) => b.textContent);
  // What sticks out, for the failure message: elements past the right edge, outside any
  // element that scrolls them.
  const scrolls = (el) => {
    for (let a = el.parentElement; a; a = a.parentElement) {
      if (["auto", "scroll"].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const wide = [...document.body.querySelectorAll("*")]
    .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1 && !scrolls(el))
    .slice(-5)
    .map((el) => `${el.tagName}.${el.className} ${(el.textContent || "").trim().slice(0, 40)}`);
  return {overflow: doc.scrollWidth - doc.clientWidth, small, wrapped, wide};
}"""


def test_a_first_time_learner_finds_the_template_and_the_checker_from_the_course_page(
    live_server, course, learner
):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="ja-JP")
            _log_in(page, live_server.url, learner.email)
            assert page.url.endswith(f"/courses/{course.code}/")
            steps = page.get_by_test_id("first-steps")
            assert steps.is_visible()
            with page.expect_download() as notebook:
                steps.get_by_test_id("template-link").click()
            assert notebook.value.suggested_filename == "submit_katakana.ipynb"
            assert b'"cells"' in Path(notebook.value.path()).read_bytes()
            with page.expect_download() as checker:
                steps.get_by_test_id("checker-link").click()
            assert checker.value.suggested_filename == "katakana-check.zip"
            assert Path(checker.value.path()).read_bytes().startswith(b"PK")
            # The command the course page names is one the downloaded kit has.
            assert "katakana-check/katakana_check.py" in steps.inner_text()
        finally:
            browser.close()


def test_an_english_learner_stays_in_english_through_login_pages_and_the_result_email(
    live_server, course, learner
):
    sync_api = pytest.importorskip("playwright.sync_api")
    from server.outbox.models import EmailKind, OutboxEmail
    from server.outbox.services import build_message
    from tests.factories import make_submission

    scored = make_submission(course, learner, accuracy=0.99, with_metrics=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="en-US")
            page.goto(f"{live_server.url}/login/")
            assert page.locator("html").get_attribute("lang") == "en"
            _log_in(page, live_server.url, learner.email)
            assert page.locator("html").get_attribute("lang") == "en"
            assert "Your submissions" in page.inner_text("main")
            page.goto(f"{live_server.url}/submissions/{scored.pk}/")
            assert page.locator("html").get_attribute("lang") == "en"
            assert page.get_by_test_id("status").inner_text() == "scored"
        finally:
            browser.close()

    def result_email() -> Any:
        learner.refresh_from_db()
        assert learner.language == "en"  # stored on the account at the first visit
        row = OutboxEmail(submission=scored, generation=1, kind=EmailKind.RESULT, to=learner.email)
        return build_message(row)

    message = _off_the_loop(result_email)
    assert message.subject.endswith(f"Your score: {scored.accuracy:.4f} (passed)")
    assert "Your submission has been scored." in message.body
    assert not any("\u3040" <= ch <= "\u309f" for ch in message.subject + message.body)


def test_the_learner_pages_fit_a_phone(live_server, course, learner):
    sync_api = pytest.importorskip("playwright.sync_api")
    from server.submissions.models import Status
    from tests.factories import make_submission

    long_name = "katakana_submission_final_version_2026-12-03_really_final.zip"
    make_submission(course, learner, accuracy=0.9712, with_metrics=True, original_name=long_name)
    failed = make_submission(
        course, learner, status=Status.FAILED, error_class="time_limit", error_code="time_limit"
    )
    scored = make_submission(course, learner, accuracy=0.985, with_metrics=True)
    paths = (
        f"/courses/{course.code}/",
        f"/submissions/{scored.pk}/",
        f"/submissions/{failed.pk}/",
        "/guide/",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844},
                locale="ja-JP",
                is_mobile=True,
                has_touch=True,
                device_scale_factor=2,
            )
            page = context.new_page()
            _log_in(page, live_server.url, learner.email)
            for language in ("ja", "en"):
                if language == "en":  # English words are longer: measure both
                    page.click("button[name=language][value=en]")
                    page.wait_for_load_state("networkidle")
                for path in paths:
                    page.goto(live_server.url + path)
                    page.wait_for_load_state("networkidle")
                    assert page.locator("html").get_attribute("lang") == language
                    measured = page.evaluate(MEASURE)
                    name = path.strip("/").replace("/", "-")
                    page.screenshot(
                        path=str(ARTIFACTS / f"browser-phone-{language}-{name}.png"),
                        full_page=True,
                    )
                    assert measured["overflow"] <= 0, (language, path, measured)
                    assert measured["small"] == [], (language, path, measured["small"][:10])
                    assert measured["wrapped"] == [], (language, path, measured["wrapped"])
            context.close()
        finally:
            browser.close()
