"""Reading a legacy-contract run: the printed score lines and the decoy judgement.

In the legacy contract the learner's ``func_predict`` reports its own loss and accuracy
and the server's ``util.py`` prints ``Test loss: x`` / ``Test accuracy: x`` as the last
lines; the score exists only on stdout. Because learner code computes those numbers,
``util.py`` also feeds one decoy batch whose labels are all wrong
(``sandbox/runner/legacy_util.py``); ``judge_decoy`` decides whether to trust the score.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from scorer.errors import ErrorClass, ScoringError, gettext_noop
from scorer.predictions import DECOY_FILE, read_result_json

EXPECTED_SIZE = 14500
TAIL_CHARS = 4000
SIZE_MESSAGES = ("label_predのサイズが足りていません", "label_predのサイズが多すぎます")
# Decoy: an honest func_predict scores at most about 1 - accuracy on wrong labels; the
# margin absorbs sampling noise on 500 images (3 sigma of a proportion is below 0.07).
DECOY_MARGIN = 0.10
# util.py records the numbers it printed; a later learner print of other numbers differs.
REPORT_TOLERANCE = 1e-9

MSG_SIZE = gettext_noop(
    "makedataset() returned %(n)s images; the test set has %(expected)s. Keep the line "
    "'test_data= util.loaddata()' and do not drop or add images."
)
MSG_NO_LINES = gettext_noop(
    "The run printed no 'Test loss:' and 'Test accuracy:' lines: main() must call "
    "util.accuracy(func_predict, test_data)."
)
MSG_NOT_NUMBER = gettext_noop(
    "func_predict must return (loss, accuracy) as numbers; the printed %(line)s was not a number."
)
MSG_OUT_OF_RANGE = gettext_noop(
    "The printed accuracy %(accuracy)s is not between 0 and 1: func_predict must return "
    "the accuracy as a fraction."
)

_LINE = re.compile(r"^Test (loss|accuracy):[ \t]?(.*)$", re.MULTILINE)
_SIZE_LINE = re.compile(r"^(\d+) label_pred", re.MULTILINE)


def _tail(stdout: str, stderr: str) -> str:
    return (
        f"--- stdout (tail) ---\n{stdout[-TAIL_CHARS:]}\n"
        f"--- stderr (tail) ---\n{stderr[-TAIL_CHARS:]}"
    )


def parse_legacy_stdout(stdout: str, stderr: str = "") -> tuple[float, float]:
    """(loss, accuracy) from the last ``Test loss:`` / ``Test accuracy:`` lines.

    Raises ScoringError WRONG_OUTPUT: ``legacy_size_mismatch`` for the course's size
    messages, ``legacy_no_score_lines`` when a line is missing (the caller reports the
    harness's traceback first if there is one), ``legacy_not_a_number`` and
    ``legacy_accuracy_out_of_range`` otherwise. ``detail`` carries the output tails.
    """
    values: dict[str, str] = {}
    for kind, value in _LINE.findall(stdout):
        values[kind] = value.strip()  # later lines win
    detail = _tail(stdout, stderr)
    if "loss" not in values or "accuracy" not in values:
        raise ScoringError(
            ErrorClass.WRONG_OUTPUT, "legacy_no_score_lines", MSG_NO_LINES, detail=detail
        )
    if values["accuracy"] in SIZE_MESSAGES or values["loss"] in SIZE_MESSAGES:
        sizes = _SIZE_LINE.findall(stdout)
        params = {"n": int(sizes[-1]) if sizes else "?", "expected": EXPECTED_SIZE}
        raise ScoringError(
            ErrorClass.WRONG_OUTPUT, "legacy_size_mismatch", MSG_SIZE, params, detail=detail
        )
    numbers = {}
    for kind in ("loss", "accuracy"):
        try:
            numbers[kind] = float(values[kind])
        except ValueError:
            numbers[kind] = math.nan
        if not math.isfinite(numbers[kind]):
            raise ScoringError(
                ErrorClass.WRONG_OUTPUT,
                "legacy_not_a_number",
                MSG_NOT_NUMBER,
                {"line": f"Test {kind}"},
                detail=detail,
            )
    if not 0.0 <= numbers["accuracy"] <= 1.0:
        raise ScoringError(
            ErrorClass.WRONG_OUTPUT,
            "legacy_accuracy_out_of_range",
            MSG_OUT_OF_RANGE,
            {"accuracy": values["accuracy"][:40]},
            detail=detail,
        )
    return numbers["loss"], numbers["accuracy"]


def judge_decoy(reported_accuracy: float, decoy: dict[str, Any] | None) -> bool:
    """True when the reported accuracy can be trusted.

    The decoy batch carries a wrong label on every image, so an honest func_predict
    with accuracy ``a`` gets right only images it misclassifies into exactly the decoy
    class: at most ``1 - a`` (about ``(1 - a) / 14`` in practice). Rule:

    * no decoy record (util.py replaced, the decoy write suppressed) → not trusted;
    * the decoy call failed or returned no number → not trusted (an honest
      func_predict handles a 500-image batch like any other);
    * util.py recorded a ``test_accuracy`` that differs from the reported one (the
      learner printed their own score line afterwards) → not trusted;
    * otherwise trusted iff ``decoy_accuracy <= (1 - reported_accuracy) + DECOY_MARGIN``.
    """
    if not isinstance(decoy, dict):
        return False
    decoy_accuracy = decoy.get("accuracy")
    if isinstance(decoy_accuracy, bool) or not isinstance(decoy_accuracy, int | float):
        return False
    if not math.isfinite(decoy_accuracy):
        return False
    recorded = decoy.get("test_accuracy")
    if (
        isinstance(recorded, int | float)
        and not isinstance(recorded, bool)
        and abs(recorded - reported_accuracy) > REPORT_TOLERANCE
    ):
        return False
    return decoy_accuracy <= max(0.0, 1.0 - reported_accuracy) + DECOY_MARGIN


def read_decoy(out_dir: Path) -> dict[str, Any] | None:
    """decoy.json written by the server's util.py, or None if absent or unusable.

    Same safety as the other out files (no symlinks, FIFOs, size cap); anything odd reads
    as None, which ``judge_decoy`` treats as untrusted.
    """
    return read_result_json(out_dir, name=DECOY_FILE) or None
