"""The learner guide page: every error class, both contracts, packaging, quota, local check."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import translation

from scorer.errors import ERROR_CLASS_TEXT, ErrorClass


def get_guide(client: Client, language: str) -> str:
    response = client.get("/guide/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_the_guide_lists_every_error_class_with_its_advice(client: Client) -> None:
    page = get_guide(client, "en")
    for error_class in ErrorClass:
        assert f'data-error-class="{error_class.value}"' in page
        title, advice = ERROR_CLASS_TEXT[error_class]
        assert title in page
        # Django escapes quotes in variables: compare the escaped advice.
        assert advice.replace("'", "&#x27;") in page


@pytest.mark.django_db
def test_the_quota_column_says_what_really_counts(client: Client) -> None:
    page = get_guide(client, "en")

    def charged(error_class: str) -> str:
        row = page.split(f'data-error-class="{error_class}"')[1].split("</tr>")[0]
        return row.split('data-charged="')[1].split('"')[0]

    assert charged("infrastructure") == charged("legacy_untraceable") == "no"
    assert charged("time_limit") == charged("learner_exception") == "yes"
    # Refused by the intake before any run: not charged (the guide said "yes").
    assert charged("invalid_archive") == charged("no_entry_point") == "at-upload"


@pytest.mark.django_db
def test_no_advice_names_a_command_the_learner_does_not_have(client: Client) -> None:
    page = get_guide(client, "en")
    assert "python -m scorer" not in page
    assert "Read the traceback" not in page
    assert "katakana_check.py" in page


@pytest.mark.django_db
def test_the_guide_explains_packaging_both_contracts_the_quota_and_the_local_check(
    client: Client,
) -> None:
    page = get_guide(client, "en")
    for fact in (
        "zip -r submit_katakana.zip submit_katakana",
        "Compressed (zipped) folder",
        "predict(test_data)",
        "(N, 1, 28, 28)",
        "func_predict(test_data, test_label)",
        "never reach your code",
        "per course day (3 unless",
        "Asia/Tokyo",
        "python katakana-check/katakana_check.py submit_katakana.zip",
    ):
        assert fact in page, fact


@pytest.mark.django_db
def test_the_guide_is_served_in_japanese_by_default(client: Client) -> None:
    page = get_guide(client, "ja")
    assert '<html lang="ja">' in page
    for error_class in ErrorClass:
        assert f'data-error-class="{error_class.value}"' in page
    with translation.override("ja"):
        title = translation.gettext(ERROR_CLASS_TEXT[ErrorClass.TIME_LIMIT][0])
    assert title.replace("'", "&#x27;") in page


@pytest.mark.django_db
def test_a_learner_sees_the_quota_and_limits_of_their_course(
    client: Client, course, learner
) -> None:  # type: ignore[no-untyped-def]
    course.daily_quota = 5
    course.time_zone = "Europe/Berlin"
    course.legacy_allowed = False
    course.save()
    # A logged-in user's saved language wins over the browser's.
    learner.language = "en"
    learner.save(update_fields=["language"])
    client.force_login(learner)
    page = get_guide(client, "en")
    table = page.split('data-testid="guide-courses"')[1].split("</table>")[0]
    assert course.name in table
    assert "<td>5</td>" in table and "Europe/Berlin" in table and "not accepted" in table


@pytest.mark.django_db
def test_the_kit_notebook_can_be_downloaded_from_the_guide(client: Client) -> None:
    page = get_guide(client, "en")
    assert 'href="/guide/kit/submit_katakana.ipynb"' in page
    response = client.get("/guide/kit/submit_katakana.ipynb")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    notebook = json.loads(b"".join(response.streaming_content))
    assert any("def predict(test_data)" in "".join(c["source"]) for c in notebook["cells"])
