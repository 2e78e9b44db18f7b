"""Self-reported scores on the instructor pages: left out of the best score, the pass count
and the chart unless the course counts them, and marked on the leaderboard, in its CSV, in
the distribution chart and in the submission browser."""

from __future__ import annotations

import csv
import io
import re

from django.urls import reverse

from server.courses.models import Course
from tests.factories import make_submission


def _login(client, user, language: str = "en"):  # type: ignore[no-untyped-def]
    user.language = language
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def _count_self_reported(course: Course) -> None:
    course.self_reported_counts = True
    course.save(update_fields=["self_reported_counts"])


def test_the_leaderboard_leaves_uncounted_scores_out_and_marks_the_latest(
    client, course, instructor, learner, other_learner
):
    make_submission(course, learner, accuracy=0.95)
    make_submission(course, learner, accuracy=0.999, self_reported=True)
    make_submission(course, other_learner, accuracy=0.999, self_reported=True, untrusted=True)
    page = _login(client, instructor).get(reverse("leaderboard", args=[course.code]))
    html = page.content.decode()
    assert "0 of 2 learners passed the threshold 0.98." in html
    assert 'data-testid="latest-self-reported"' in html
    assert 'data-testid="latest-untrusted"' in html
    assert 'data-testid="best-self-reported"' not in html
    assert "Only scores computed by the server count" in html
    chart = html[html.index('data-testid="distribution-chart"') :]
    chart = chart[: chart.index("</svg>")]
    # Only the trusted 0.95 is a best score; nothing self-reported is in the chart.
    assert sum(map(int, re.findall(r'data-count="(\d+)"', chart))) == 1
    assert 'data-role="self-reported"' not in chart


def test_counted_self_reported_scores_are_marked_on_the_leaderboard_and_hatched_in_the_chart(
    client, course, instructor, learner, other_learner
):
    _count_self_reported(course)
    make_submission(course, learner, accuracy=0.999, self_reported=True)
    make_submission(course, other_learner, accuracy=0.985)
    page = _login(client, instructor).get(reverse("leaderboard", args=[course.code]))
    html = page.content.decode()
    assert "2 of 2 learners passed the threshold 0.98." in html
    assert html.count('data-testid="best-self-reported"') == 1
    assert "they are marked in the table and hatched in the chart" in html
    chart = html[html.index('data-testid="distribution-chart"') :]
    chart = chart[: chart.index("</svg>")]
    assert sum(map(int, re.findall(r'data-self-reported="(\d+)"', chart))) == 1
    assert chart.count('data-role="self-reported"') == 1
    assert "(self-reported: 1)" in chart and 'data-role="legend"' in chart


def test_the_csv_says_which_scores_are_self_reported_or_untrusted(
    client, course, instructor, learner, other_learner
):
    _count_self_reported(course)
    make_submission(course, learner, accuracy=0.999, self_reported=True)
    make_submission(course, other_learner, accuracy=0.9)
    make_submission(course, other_learner, accuracy=0.999, self_reported=True, untrusted=True)
    response = _login(client, instructor).get(reverse("leaderboard_csv", args=[course.code]))
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    header = rows[0]
    assert header[3:9] == [
        "best accuracy",
        "best is self-reported",
        "latest accuracy",
        "latest is self-reported",
        "latest is untrusted",
        "passed",
    ]
    by_email = {row[2]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    reported, other = by_email["learner@example.com"], by_email["other@example.com"]
    assert (reported["best accuracy"], reported["best is self-reported"], reported["passed"]) == (
        "0.9990",
        "yes",
        "yes",
    )
    assert (other["best accuracy"], other["best is self-reported"], other["passed"]) == (
        "0.9000",
        "no",
        "no",
    )
    assert (other["latest is self-reported"], other["latest is untrusted"]) == ("yes", "yes")


def test_the_csv_speaks_japanese_by_default(client, course, instructor, learner):
    make_submission(course, learner, accuracy=0.999, self_reported=True)
    client.force_login(instructor)
    response = client.get(reverse("leaderboard_csv", args=[course.code]))
    header = next(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert "最高正解率は自己申告" in header and "最新正解率は要確認" in header


def test_the_submission_browser_marks_self_reported_and_untrusted_scores(
    client, course, instructor, learner
):
    make_submission(course, learner, accuracy=0.999, self_reported=True, untrusted=True)
    page = _login(client, instructor).get(reverse("course_submissions", args=[course.code]))
    html = page.content.decode()
    assert '<span class="badge self-reported">self-reported</span>' in html
    assert '<span class="badge failed">untrusted</span>' in html
