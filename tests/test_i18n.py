"""The translation catalogs: Japanese complete, placeholders intact, .mo current, a language switch.

Japanese is the default language and every msgid is English, so an untranslated msgid shows
English to a Japanese learner: these tests fail on an empty or fuzzy Japanese msgstr, on a
placeholder lost in translation (a KeyError at render time), on a committed ``.mo`` older than
its ``.po`` (the learner command line reads the ``.mo`` with the stdlib), and on a marked string
the catalogs do not hold yet (run ``scripts/messages``). The .po reader below covers what
``makemessages`` writes; no extra dependency.
"""

from __future__ import annotations

import ast
import gettext
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locale"
LANGUAGES = ("ja", "en")
# The folders scripts/messages collects msgids from.
SOURCES = ("server", "scorer", "templates")
PLACEHOLDER = re.compile(r"%\(\w+\)[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|\{\{.*?\}\}")
# Inline HTML inside blocktranslate: a translation must keep each tag and its attributes.
HTML_TAG = re.compile(r"</?(?:a|b|i|em|strong|code|kbd|br|span|small)\b[^>]*>")
FIELD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")$')


@dataclass
class Entry:
    msgid: str
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstrs: list[str] = field(default_factory=list)  # [msgstr] or msgstr[0..n-1]
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)


def po_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / "django.po"


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file, header first; obsolete (#~) entries are left out."""
    entries: list[Entry] = []
    fields: dict[str, str] = {}
    flags: set[str] = set()
    current = ""

    def close() -> None:
        nonlocal fields, flags
        if "msgid" in fields:
            msgstrs = [fields[k] for k in sorted(k for k in fields if k.startswith("msgstr"))]
            plural, context = fields.get("msgid_plural"), fields.get("msgctxt")
            entries.append(Entry(fields["msgid"], plural, context, msgstrs, flags))
        fields, flags = {}, set()

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            close()
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#"):
            if any(k.startswith("msgstr") for k in fields):
                close()
            if line.startswith("#,"):
                flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if line.startswith('"'):
            fields[current] += ast.literal_eval(line)
            continue
        match = FIELD.match(line)
        assert match, f"{path}: cannot parse {line!r}"
        if match[1] == "msgctxt" or (match[1] == "msgid" and "msgid" in fields):
            close()
        current = match[1]
        # PO escapes (\n, \t, \", \\) are a subset of Python's.
        fields[current] = ast.literal_eval(match[2])
    close()
    return entries


def placeholders(text: str) -> list[str]:
    """The %(name)s placeholders, {{ var }} and inline HTML tags of a msgid or msgstr."""
    found = [match.replace(" ", "") for match in PLACEHOLDER.findall(text)]
    return sorted(found + HTML_TAG.findall(text))


def pairs(entry: Entry) -> list[tuple[str, str]]:
    """(msgstr, the msgid it translates): msgstr[0] is the singular only if there are more forms."""
    if entry.msgid_plural is None:
        return [(entry.msgstrs[0], entry.msgid)]
    return [
        (text, entry.msgid if index == 0 and len(entry.msgstrs) > 1 else entry.msgid_plural)
        for index, text in enumerate(entry.msgstrs)
    ]


def japanese() -> list[Entry]:
    return read_po(po_path("ja"))[1:]


def scorer_msgids() -> set[str]:
    """Every literal scorer/ marks with gettext_noop: its learner-facing messages."""
    found: set[str] = set()
    for path in sorted((ROOT / "scorer").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "gettext_noop"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def test_every_japanese_msgid_is_translated_and_none_is_fuzzy() -> None:
    entries = read_po(po_path("ja"))
    assert len(entries) > 300, "the Japanese catalog lost its entries"
    untranslated = [e.msgid for e in entries[1:] if not e.msgstrs or not all(e.msgstrs)]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    assert untranslated == [], "translate these in locale/ja (scripts/messages lists them)"
    assert fuzzy == [], "check these translations and drop their fuzzy flag"


def test_japanese_has_one_plural_form_and_english_two() -> None:
    headers = {language: read_po(po_path(language))[0].msgstrs[0] for language in LANGUAGES}
    assert "Language: ja\n" in headers["ja"] and "nplurals=1; plural=0;" in headers["ja"]
    assert "Language: en\n" in headers["en"] and "nplurals=2; plural=(n != 1);" in headers["en"]
    assert all(len(e.msgstrs) == 1 for e in japanese() if e.msgid_plural is not None)


def test_no_japanese_msgstr_is_a_copy_of_its_english_msgid() -> None:
    copies = [e.msgid for e in japanese() if any(text == msgid for text, msgid in pairs(e))]
    assert copies == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_translation_keeps_the_placeholders_and_tags_of_its_msgid(language: str) -> None:
    broken = [
        (msgid, msgstr)
        for entry in read_po(po_path(language))[1:]
        for msgstr, msgid in pairs(entry)
        if msgstr and placeholders(msgstr) != placeholders(msgid)
    ]
    assert broken == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_python_format_translation_renders_with_its_parameters(language: str) -> None:
    # A stray "%" in a msgstr would raise at render time, in a learner's email or result page.
    failures = []
    for entry in read_po(po_path(language))[1:]:
        if "python-format" not in entry.flags:
            continue
        for msgstr, msgid in pairs(entry):
            params = {name: 7 for name in re.findall(r"%\((\w+)\)", msgid)}
            try:
                rendered = (msgstr or msgid) % params
            except (KeyError, ValueError, TypeError) as error:
                failures.append((msgstr, repr(error)))
                continue
            if params and "7" not in rendered:
                failures.append((msgstr, "no parameter shows"))
    assert failures == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalog_matches_its_po_file(language: str) -> None:
    """What msgfmt would write from the .po is exactly what the committed .mo holds."""
    expected: dict[object, str] = {}
    for entry in read_po(po_path(language)):
        if "fuzzy" in entry.flags or not all(entry.msgstrs):
            continue  # msgfmt leaves these out
        msgid = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt is not None else entry.msgid
        if entry.msgid == "":
            # msgfmt drops the POT date from the header so that a regenerated .mo is identical.
            expected[msgid] = re.sub(r"POT-Creation-Date: [^\n]*\n", "", entry.msgstrs[0])
        elif entry.msgid_plural is None:
            expected[msgid] = entry.msgstrs[0]
        else:
            expected.update({(msgid, index): text for index, text in enumerate(entry.msgstrs)})
    with (LOCALE / language / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    # _catalog is the parsed .mo: the stdlib offers no public way to list its messages.
    assert compiled._catalog == expected, "run scripts/messages and commit the .mo"  # type: ignore[attr-defined]


def test_every_scorer_message_reads_in_japanese_through_the_stdlib() -> None:
    """The learner command line translates with the stdlib from the same .mo as the server."""
    from scorer import archive, predictions, testset
    from scorer.errors import ERROR_CLASS_TEXT, ErrorClass

    messages = scorer_msgids()
    messages |= {text for cls in ErrorClass for text in ERROR_CLASS_TEXT[cls]}
    messages |= {*archive.MESSAGES.values(), *testset.MESSAGES.values()}
    messages |= set(predictions.FIXED_MESSAGES.values())
    assert len(messages) > 80
    translate = gettext.translation("django", localedir=str(LOCALE), languages=["ja"]).gettext
    assert sorted(m for m in messages if translate(m) == m) == []


def test_a_scoring_error_renders_in_japanese_with_its_parameters() -> None:
    from scorer.archive import MESSAGES
    from scorer.errors import ERROR_CLASS_TEXT, ErrorClass, ScoringError

    error = ScoringError(
        ErrorClass.INVALID_ARCHIVE,
        "archive_too_large",
        MESSAGES["archive_too_large"],
        {"size_mb": 250, "limit_mb": 200},
    )
    with translation.override("ja"):
        assert error.render(translation.gettext) == (
            "zip ファイルのサイズが 250 MB あります。上限は 200 MB です。"
        )
        assert translation.gettext(ERROR_CLASS_TEXT[ErrorClass.TIME_LIMIT][0]) == (
            "コードの実行が制限時間を超えました"
        )
    with translation.override("en"):
        assert error.render(translation.gettext) == "The zip file is 250 MB; the limit is 200 MB."


def test_plural_forms_follow_each_language() -> None:
    singular, plural = "%(n)s submission", "%(n)s submissions"
    with translation.override("ja"):
        assert translation.ngettext(singular, plural, 1) == "%(n)s 件"
        assert translation.ngettext(singular, plural, 5) == "%(n)s 件"
    with translation.override("en"):
        assert translation.ngettext(singular, plural, 1) == singular
        assert translation.ngettext(singular, plural, 5) == plural


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext is not installed")
def test_the_catalogs_hold_every_string_the_code_marks(tmp_path, monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    # makemessages on a copy of the sources, so the real catalogs are not touched.
    for name in SOURCES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    monkeypatch.chdir(tmp_path)
    call_command("makemessages", locale=list(LANGUAGES), verbosity=0, no_obsolete=True)
    marked = {e.key for e in read_po(tmp_path / "locale" / "ja" / "LC_MESSAGES" / "django.po")}
    for language in LANGUAGES:
        catalog = {e.key for e in read_po(po_path(language))}
        hint = f"run scripts/messages, then translate: locale/{language} is behind the code"
        assert sorted(marked - catalog, key=str) == [], hint
        assert sorted(catalog - marked, key=str) == [], hint


def test_the_login_page_is_japanese_by_default(client) -> None:  # type: ignore[no-untyped-def]
    html = client.get(reverse("login")).content.decode()
    assert '<html lang="ja">' in html
    assert "<h1>ログイン</h1>" in html
    assert "パスワードを忘れた場合" in html
    assert "Forgot your password" not in html


def test_the_language_switch_turns_the_pages_english_and_back(client) -> None:  # type: ignore[no-untyped-def]
    login = reverse("login")
    response = client.post(reverse("set_language"), {"language": "en", "next": login})
    assert response.status_code == 302 and response["Location"] == login
    html = client.get(login).content.decode()
    assert '<html lang="en">' in html
    assert "<h1>Log in</h1>" in html and "Forgot your password, or never set one?" in html
    assert "パスワード" not in html

    client.post(reverse("set_language"), {"language": "ja", "next": login})
    assert "<h1>ログイン</h1>" in client.get(login).content.decode()
