"""A learner takes their history away: a CSV for a spreadsheet and a PNG for a slide."""

from __future__ import annotations

import csv
import datetime as dt
import io

from django.urls import reverse
from django.utils import timezone
from PIL import Image

from tests.factories import make_submission


def _login(client, user, language: str = "ja"):  # type: ignore[no-untyped-def]
    user.language = language
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def test_the_history_csv_lists_my_scored_submissions_only_in_my_language(
    client, course, learner, other_learner
):
    now = timezone.now()
    first = make_submission(course, learner, accuracy=0.91, created_at=now - dt.timedelta(hours=5))
    second = make_submission(
        course, learner, accuracy=0.985, created_at=now - dt.timedelta(hours=1)
    )
    make_submission(course, learner, accuracy=0.999, self_reported=True)
    make_submission(course, learner, status="failed", error_class="time_limit")
    make_submission(course, other_learner, accuracy=0.5)  # not mine

    response = _login(client, learner, "en").get(reverse("my_history_csv", args=[course.code]))
    assert response.status_code == 200
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")  # Excel reads the UTF-8 with its BOM
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0] == [
        "submission", "submitted at", "accuracy", "counts toward the threshold", "self-reported",
    ]  # fmt: skip
    assert [r[0] for r in rows[1:]] == [str(first.pk), str(second.pk), rows[3][0]]
    assert [r[2] for r in rows[1:]] == ["0.9100", "0.9850", "0.9990"]
    assert [r[3] for r in rows[1:]] == ["yes", "yes", "no"]  # self-reported: not counted

    japanese = _login(client, learner, "ja").get(reverse("my_history_csv", args=[course.code]))
    assert "正解率" in japanese.content.decode("utf-8").splitlines()[0]


def test_the_history_chart_is_a_slide_sized_png(client, course, learner):
    make_submission(
        course, learner, accuracy=0.95, created_at=timezone.now() - dt.timedelta(days=2)
    )
    make_submission(course, learner, accuracy=0.982)
    response = _login(client, learner).get(reverse("my_history_png", args=[course.code]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (1280, 720)
    # Something was drawn: the picture is not one flat colour.
    assert len(image.convert("L").getcolors(maxcolors=256) or range(257)) > 10


def test_a_course_page_links_the_downloads_and_strangers_get_nothing(
    client, course, learner, other_learner
):
    make_submission(course, learner, accuracy=0.95)
    page = _login(client, learner).get(reverse("course", args=[course.code])).content.decode()
    assert 'data-testid="history-png"' in page and 'data-testid="history-csv"' in page
    client.logout()
    anonymous = client.get(reverse("my_history_csv", args=[course.code]))
    assert anonymous.status_code == 302  # to the login page
