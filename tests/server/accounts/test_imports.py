"""Class-list import: Excel's encodings, bad lines, re-imports, invitations, page, command."""

from __future__ import annotations

import io
import re

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import translation

from server.accounts.imports import ImportFileError, learners_import
from server.accounts.models import User
from server.courses.models import Enrollment, Role

CODE = "dl_test_2026"


def csv_bytes(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


def run_import(course, text: str, encoding: str = "utf-8", **options):  # type: ignore[no-untyped-def]
    # Messages are asserted in English; the Japanese default has its own test elsewhere.
    with translation.override("en"):
        return learners_import(
            course=course, csv_file=csv_bytes(text, encoding), invited_by=None, **options
        )


def test_it_creates_and_enrols_learners_from_a_utf8_csv_with_bom_and_japanese_header(course):  # type: ignore[no-untyped-def]
    text = (
        "氏名,メールアドレス,コースコード\r\n"
        f"山田 太郎,Taro@Example.com,{CODE}\r\n"
        f"佐藤 花子,hanako@example.com,{CODE}\r\n"
    )
    report = run_import(course, text, "utf-8-sig")

    assert [(r.line, r.email, r.name) for r in report.created] == [
        (2, "taro@example.com", "山田 太郎"),
        (3, "hanako@example.com", "佐藤 花子"),
    ]
    assert report.errors == []
    taro = User.objects.get(email="taro@example.com")
    assert taro.display_name == "山田 太郎"
    assert not taro.has_usable_password()
    # Not chosen yet: their first visit stores their browser's; until then, Japanese.
    assert (taro.language, taro.language_in_use) == ("", "ja")
    assert Enrollment.objects.get(user=taro, course=course).role == Role.LEARNER


def test_it_reads_a_cp932_file_saved_by_excel_without_a_header(course):  # type: ignore[no-untyped-def]
    text = f"髙橋 一郎,ichiro@example.com,{CODE}\r\nｶﾀｶﾅ ﾀﾛｳ,kana@example.com,{CODE}\r\n"
    report = run_import(course, text, "cp932")

    assert [r.name for r in report.created] == ["髙橋 一郎", "ｶﾀｶﾅ ﾀﾛｳ"]
    assert [r.line for r in report.created] == [1, 2]


def test_it_reads_excel_unicode_text_utf16_tab_separated(course):  # type: ignore[no-untyped-def]
    text = f"name\temail\tcourse\n鈴木 次郎\tjiro@example.com\t{CODE}\n"
    report = run_import(course, text, "utf-16")

    assert [r.email for r in report.created] == ["jiro@example.com"]


def test_it_maps_columns_by_header_names_in_any_order(course):  # type: ignore[no-untyped-def]
    text = f"Email,Course code,Name\nsaburo@example.com,{CODE},三郎\n"
    report = run_import(course, text)

    assert [(r.email, r.name) for r in report.created] == [("saburo@example.com", "三郎")]


def test_it_reports_bad_lines_with_their_numbers_and_imports_the_others(course):  # type: ignore[no-untyped-def]
    text = (
        "name,email,course\n"
        f"良い 人,good@example.com,{CODE}\n"
        f"悪い メール,not-an-email,{CODE}\n"
        f"メール なし,,{CODE}\n"
        "別 講座,other-course@example.com,another_course\n"
        "\n"
        f"二重 登録,GOOD@example.com,{CODE}\n"
        "全角 アット,ｚｅｎｋａｋｕ＠example.com,\n"
    )
    report = run_import(course, text)

    assert [r.email for r in report.created] == ["good@example.com", "zenkaku@example.com"]
    errors = {e.line: e.message for e in report.errors}
    assert sorted(errors) == [3, 4, 5, 7]
    assert "not-an-email" in errors[3]
    assert "line 2" in errors[7]
    assert "another_course" in errors[5]
    assert not User.objects.filter(email="other-course@example.com").exists()


def test_a_second_import_of_the_same_list_reports_already_enrolled_and_sends_nothing(
    course, eager_celery, django_capture_on_commit_callbacks
):  # type: ignore[no-untyped-def]
    text = f"A,a@example.com,{CODE}\nB,b@example.com,{CODE}\n"
    with django_capture_on_commit_callbacks(execute=True):
        run_import(course, text)
    assert len(mail.outbox) == 2

    with django_capture_on_commit_callbacks(execute=True):
        again = run_import(course, text + f"C,c@example.com,{CODE}\n")

    assert [r.email for r in again.already_enrolled] == ["a@example.com", "b@example.com"]
    assert [r.email for r in again.created] == ["c@example.com"]
    assert [m.to for m in mail.outbox[2:]] == [["c@example.com"]]
    assert User.objects.filter(email="a@example.com").count() == 1


def test_resend_invites_again_only_learners_who_never_set_a_password(
    course, learner, eager_celery, django_capture_on_commit_callbacks
):  # type: ignore[no-untyped-def]
    text = f"A,a@example.com,{CODE}\nL,{learner.email},{CODE}\n"
    with django_capture_on_commit_callbacks(execute=True):
        run_import(course, text)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        report = run_import(course, text, resend_invitations=True)

    assert [r.email for r in report.reinvited] == ["a@example.com"]
    assert [m.to for m in mail.outbox] == [["a@example.com"]]


def test_it_enrols_an_existing_account_and_never_demotes_an_instructor(course, instructor):  # type: ignore[no-untyped-def]
    User.objects.create_user(email="known@example.com", password="pw-known-123")
    text = f"Known,known@example.com,{CODE}\nTeacher,{instructor.email},{CODE}\n"
    report = run_import(course, text)

    assert [r.email for r in report.enrolled] == ["known@example.com"]
    assert [r.email for r in report.already_enrolled] == [instructor.email]
    assert Enrollment.objects.get(user=instructor, course=course).role == Role.INSTRUCTOR


def test_it_refuses_a_file_that_is_not_text(course):  # type: ignore[no-untyped-def]
    with pytest.raises(ImportFileError):
        learners_import(
            course=course,
            csv_file=io.BytesIO(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x81\xff"),
            invited_by=None,
        )


def test_the_invitation_is_japanese_text_and_html_and_its_link_sets_a_password(
    client, course, instructor, eager_celery, django_capture_on_commit_callbacks
):  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        learners_import(
            course=course,
            csv_file=csv_bytes(f"新人 さん,newbie@example.com,{CODE}\n"),
            invited_by=instructor,
        )

    (message,) = mail.outbox
    assert message.to == ["newbie@example.com"]
    assert CODE in message.subject
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    link = re.search(re.escape(settings.SITE_URL) + r"/account/invitation/\S+/", message.body)
    assert link is not None
    assert link.group(0) in html
    # Rendered in the recipient's language: Japanese for imported learners.
    assert message.extra_headers["Content-Language"] == "ja"
    assert "新人 さん" in message.body

    path = link.group(0)[len(settings.SITE_URL) :]
    form_page = client.get(path, follow=True)
    assert form_page.context["validlink"] is True
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "kana-ready-2026", "new_password2": "kana-ready-2026"},
        follow=True,
    )
    assert done.redirect_chain[-1][0] == reverse("password_reset_complete")

    logged_in = client.post(
        reverse("login"), {"username": "newbie@example.com", "password": "kana-ready-2026"}
    )
    assert logged_in.status_code == 302
    assert client.get(reverse("account_settings")).status_code == 200
    # Used once: the same link no longer works.
    client.post(reverse("logout"))
    assert client.get(path, follow=True).context["validlink"] is False


def test_the_import_page_imports_for_an_instructor_of_the_course(client, course, instructor):  # type: ignore[no-untyped-def]
    client.force_login(instructor)
    upload = io.BytesIO(f"X,x@example.com,{CODE}\nbad line,nope,{CODE}\n".encode())
    upload.name = "class.csv"

    response = client.post(reverse("learners_import", args=[CODE]), {"csv_file": upload})

    assert response.status_code == 200
    report = response.context["report"]
    assert [r.email for r in report.created] == ["x@example.com"]
    assert [e.line for e in report.errors] == [2]
    assert "x@example.com" in response.content.decode()


def test_the_import_page_is_404_for_learners_and_other_courses_instructors(client, course, learner):  # type: ignore[no-untyped-def]
    from server.courses.services import course_create, enrollment_create

    other = course_create(name="Other", code="other_course")
    teacher = enrollment_create(course=other, email="t@example.com", role=Role.INSTRUCTOR).user
    url = reverse("learners_import", args=[CODE])

    client.force_login(learner)
    assert client.get(url).status_code == 404
    client.force_login(teacher)
    assert client.get(url).status_code == 404


def test_the_command_imports_and_fails_when_a_line_was_bad(course, tmp_path):  # type: ignore[no-untyped-def]
    good = tmp_path / "good.csv"
    good.write_bytes(f"名前,cmd@example.com,{CODE}\n".encode("cp932"))
    out = io.StringIO()
    call_command("import_learners", CODE, str(good), stdout=out)
    assert "created and invited cmd@example.com" in out.getvalue()

    bad = tmp_path / "bad.csv"
    bad.write_text(f"x,broken,{CODE}\n", encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("import_learners", CODE, str(bad), stdout=io.StringIO(), stderr=io.StringIO())


def test_the_import_page_does_not_say_which_addresses_already_had_an_account_and_tells_them(
    client, course, instructor, eager_celery, django_capture_on_commit_callbacks
):  # type: ignore[no-untyped-def]
    # Before, the page listed "existing account" against known addresses (an account
    # oracle for any instructor) and enrolled users of other courses without a word.
    from server.courses.services import course_create, enrollment_create

    other = course_create(name="Other", code="other_course")
    known = enrollment_create(
        course=other, email="known@example.com", role=Role.LEARNER, password="pw-known-123"
    ).user
    invited_elsewhere = enrollment_create(
        course=other, email="pending@example.com", role=Role.LEARNER
    ).user
    mail.outbox.clear()
    instructor.language = "en"
    instructor.save(update_fields=["language"])
    client.force_login(instructor)
    upload = io.BytesIO(
        f"New,new@example.com,{CODE}\nKnown,known@example.com,{CODE}\n"
        f"Pending,pending@example.com,{CODE}\n".encode()
    )
    upload.name = "class.csv"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("learners_import", args=[CODE]), {"csv_file": upload})

    page = response.content.decode()
    assert "3 learners added and sent an email" in page
    for hint in ("existing account", "invited</td>", "sent again"):
        assert hint not in page
    added = page[page.index('data-testid="added"') :]
    added = added[: added.index("</table>")]
    assert [row.count("<td>") for row in added.split("<tr>")[2:]] == [3, 3, 3]
    # Everyone added hears of it: invitations for the two without a password, a notice
    # (no set-password link) for the existing account.
    sent = {m.to[0]: m for m in mail.outbox}
    assert set(sent) == {"new@example.com", "known@example.com", "pending@example.com"}
    notice = sent["known@example.com"]
    assert "すでにアカウントをお持ちです" in notice.body  # in the recipient's language
    assert "/invitation/" not in notice.body
    assert Enrollment.objects.filter(course=course, user=known).exists()
    assert Enrollment.objects.filter(course=course, user=invited_elsewhere).exists()
