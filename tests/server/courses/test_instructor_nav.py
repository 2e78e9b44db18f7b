"""Instructor navigation: no dead-end admin tab, the tab bar on the import page, and the
guide's names for error classes in the submission browser."""

from __future__ import annotations

from django.urls import reverse

from tests.factories import make_submission


def test_the_admin_tab_is_shown_to_staff_only(client, course, instructor):  # type: ignore[no-untyped-def]
    client.force_login(instructor)
    url = reverse("leaderboard", args=[course.code])
    assert 'data-testid="admin-link"' not in client.get(url).content.decode()

    instructor.is_staff = True
    instructor.save(update_fields=["is_staff"])
    assert 'data-testid="admin-link"' in client.get(url).content.decode()


def test_the_import_page_has_the_instructor_tab_bar(client, course, instructor):  # type: ignore[no-untyped-def]
    client.force_login(instructor)
    html = client.get(reverse("learners_import", args=[course.code])).content.decode()
    assert 'class="tabs"' in html
    assert f'href="{reverse("learners_import", args=[course.code])}" aria-current="page"' in html
    assert f'href="{reverse("leaderboard", args=[course.code])}"' in html


def test_the_submission_browser_names_errors_as_the_guide_does(client, course, instructor, learner):  # type: ignore[no-untyped-def]
    make_submission(
        course, learner, status="failed", error_class="time_limit", error_code="time_limit"
    )
    client.force_login(instructor)
    client.cookies["django_language"] = "ja"
    html = client.get(reverse("course_submissions", args=[course.code])).content.decode()
    assert 'href="/guide/#error-time_limit">コードの実行が制限時間を超えました</a>' in html
