"""Translate learner-facing strings outside Django, from the project's one catalog.

The server translates with Django's gettext; the command line (``python -m scorer``)
must print the same sentences on a learner's machine that has neither Django nor a
database. Both read the compiled catalog ``locale/<lang>/LC_MESSAGES/django.mo``, so
there is one set of translations. When the catalog is absent (a fresh checkout before
``compilemessages``, or a copy of ``scorer/`` without ``locale/``) the English msgids
are shown: a readable message beats a crash.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Callable
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "django"
LANGUAGES = ("ja", "en")
# The course is Japanese; the server's LANGUAGE_CODE is "ja" as well.
DEFAULT_LANGUAGE = "ja"
LANGUAGE_ENV = "KATAKANA_LANG"

Translate = Callable[[str], str]


def resolve_language(requested: str | None = None) -> str:
    """``requested`` if given, else ``$KATAKANA_LANG``, else Japanese; unknown → English."""
    language = (requested or os.environ.get(LANGUAGE_ENV) or DEFAULT_LANGUAGE).lower()
    language = language.split("_")[0].split("-")[0]
    return language if language in LANGUAGES else "en"


def translator(language: str | None = None, locale_dir: Path | None = None) -> Translate:
    """A ``gettext`` function for ``language`` (see ``resolve_language``).

    Falls back to the identity (English msgids) when no compiled catalog is found.
    """
    catalog = gettext.translation(
        DOMAIN,
        localedir=str(locale_dir or LOCALE_DIR),
        languages=[resolve_language(language)],
        fallback=True,
    )
    return catalog.gettext


def has_catalog(language: str, locale_dir: Path | None = None) -> bool:
    """Whether a compiled catalog exists for ``language`` (the CLI says when it does not)."""
    base = locale_dir or LOCALE_DIR
    return (base / resolve_language(language) / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()


def fill(translate: Translate, message: str, params: dict[str, object] | None = None) -> str:
    """Translate ``message`` and fill its ``%(name)s`` placeholders, never raising."""
    text = translate(message)
    if not params:
        return text
    try:
        return text % params
    except (KeyError, ValueError, TypeError):
        return text
