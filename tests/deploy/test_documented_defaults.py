"""The numbers docs/reliability.md gives for the KATAKANA_* settings are the code's.

One source of truth: ``server/settings.py``'s defaults. The docs' table and
``deploy/.env.example`` must say the same (the docs once said a 60 s lease while the code
and the example used 30 s)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(KATAKANA_[A-Z_]+)` \| (\d+(?:\.\d+)?)\b", re.M)


def documented() -> dict[str, float]:
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    return {name: float(value) for name, value in ROW.findall(text)}


def env_example() -> dict[str, str]:
    text = (ROOT / "deploy" / ".env.example").read_text(encoding="utf-8")
    return dict(re.findall(r"^#?\s*(KATAKANA_[A-Z0-9_]+)=(\S*)", text, re.M))


def settings_default(name: str) -> float:
    # The default written in server/settings.py (the environment may override it in a run).
    text = (ROOT / "server" / "settings.py").read_text(encoding="utf-8")
    match = re.search(rf'^{name} = env_\w+\("{name}", ([\d.]+)\)', text, re.M)
    assert match, f"{name} has no literal default in server/settings.py"
    return float(match[1])


def test_the_docs_table_lists_the_lease_and_its_siblings() -> None:
    assert {"KATAKANA_LEASE_SECONDS", "KATAKANA_MAX_ATTEMPTS"} <= documented().keys()


@pytest.mark.parametrize("name", sorted(documented()))
def test_every_documented_default_is_the_settings_default_and_the_examples(name: str) -> None:
    assert settings_default(name) == documented()[name], f"{name}: docs vs settings"
    example = env_example().get(name)
    if example:
        assert float(example) == documented()[name], f"{name}: docs vs deploy/.env.example"
