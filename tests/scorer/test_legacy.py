"""Parsing legacy stdout and judging the decoy batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorer.errors import ErrorClass, ScoringError
from scorer.legacy import judge_decoy, parse_legacy_stdout, read_decoy

G3_RUN = """0
2.34993254783361 0.5192
1
2.304296211631948 0.4108
Test loss: 2.272965
Test accuracy: 0.4328275862068966
"""


def test_it_reads_the_last_score_lines() -> None:
    assert parse_legacy_stdout(G3_RUN) == (2.272965, 0.4328275862068966)
    twice = G3_RUN + "Test loss: 0.5\nTest accuracy: 0.9\n"
    assert parse_legacy_stdout(twice) == (0.5, 0.9)


@pytest.mark.parametrize(
    ("stdout", "code"),
    [
        (
            "14000 label_predのサイズが足りていません\n"
            "Test loss: label_predのサイズが足りていません\n"
            "Test accuracy: label_predのサイズが足りていません\n",
            "legacy_size_mismatch",
        ),
        (
            "14503 label_predのサイズが多すぎます\nTest loss: label_predのサイズが多すぎます\n"
            "Test accuracy: label_predのサイズが多すぎます\n",
            "legacy_size_mismatch",
        ),
        ("0\n1.0 0.5\n", "legacy_no_score_lines"),
        ("Test loss: 1.0\n", "legacy_no_score_lines"),
        ("Test loss: 1.0\nTest accuracy: [0.5 0.6]\n", "legacy_not_a_number"),
        ("Test loss: nan\nTest accuracy: 0.5\n", "legacy_not_a_number"),
        ("Test loss: 1.0\nTest accuracy: 98.5\n", "legacy_accuracy_out_of_range"),
    ],
)
def test_it_refuses_what_is_not_a_score(stdout: str, code: str) -> None:
    with pytest.raises(ScoringError) as caught:
        parse_legacy_stdout(stdout, "Traceback: boom")

    assert caught.value.error_class is ErrorClass.WRONG_OUTPUT and caught.value.code == code
    assert "boom" in caught.value.detail


def test_the_size_message_says_fewer_but_never_the_printed_count() -> None:
    # The printed count is whatever len() the learner's makedataset() returned: a number
    # of its choosing, so the learner sees only "fewer" or "more" (instructors the log).
    stdout = (
        "31415926 label_predのサイズが足りていません\n"
        "Test loss: label_predのサイズが足りていません\n"
        "Test accuracy: label_predのサイズが足りていません\n"
    )
    with pytest.raises(ScoringError) as caught:
        parse_legacy_stdout(stdout)
    text = caught.value.render()
    assert "fewer" in text and "14500" in text
    assert "31415926" not in text and "31415926" in caught.value.detail


def decoy(accuracy: object, **extra: object) -> dict:
    return {"n": 500, "loss": 2.0, "accuracy": accuracy, "error": None, **extra}


@pytest.mark.parametrize(
    ("reported", "record", "trusted"),
    [
        (0.43, decoy(0.04), True),
        (0.99, decoy(0.0), True),
        (0.99, decoy(0.08), True),  # within the margin above 1 - a
        (0.99, decoy(0.2), False),
        (1.0, decoy(1.0), False),  # reports 1.0 whatever the labels
        (0.9, decoy(0.9), False),
        (0.9, decoy(None, error="ValueError"), False),
        (0.9, decoy(float("nan")), False),
        (0.9, decoy(True), False),
        (0.9, None, False),
        (0.99, decoy(0.01, test_accuracy=0.7), False),  # a later print replaced util's line
        (0.7, decoy(0.01, test_accuracy=0.7), True),
    ],
)
def test_judge_decoy(reported: float, record: dict | None, trusted: bool) -> None:
    assert judge_decoy(reported, record) is trusted


def test_read_decoy_reads_the_file_and_refuses_links(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert read_decoy(out) is None
    (out / "decoy.json").write_text(json.dumps(decoy(0.02, position=3, test_accuracy=0.9)))
    assert read_decoy(out) == decoy(0.02, position=3, test_accuracy=0.9, test_loss=None)

    (out / "decoy.json").unlink()
    (tmp_path / "forged.json").write_text(json.dumps(decoy(0.0)))
    (out / "decoy.json").symlink_to(tmp_path / "forged.json")
    assert read_decoy(out) is None
    (out / "decoy.json").unlink()
    (out / "decoy.json").write_text("[not json")
    assert read_decoy(out) is None
