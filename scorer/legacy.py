"""Reading a legacy-contract run: the recorded comparisons, or the self-reported lines.

By default (``score_recorded``) the learner's ``func_predict`` receives a label stand-in
that records, per test image, the class the code compared the label with
(``sandbox/runner/legacy_util.py``); the host scores that record against labels that
never entered the sandbox, exactly as the verified contract's predictions, and the score
is trusted. A record that does not cover every image exactly once is a not-charged
``legacy_untraceable`` error.

Only in a course's opt-in labelled mode does ``func_predict`` get the real labels and
report its own loss and accuracy: the server's ``util.py`` prints ``Test loss: x`` /
``Test accuracy: x`` as the last lines and feeds one decoy batch whose labels are all
wrong; ``judge_decoy`` decides whether to trust that self-reported score.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from scorer.errors import ErrorClass, ScoringError, gettext_noop
from scorer.metrics import Metrics, compute_metrics
from scorer.predictions import DECOY_FILE, read_legacy_record, read_result_json

EXPECTED_SIZE = 14500
TAIL_CHARS = 4000
SIZE_MESSAGES = ("label_predのサイズが足りていません", "label_predのサイズが多すぎます")
# Decoy: an honest func_predict scores at most about 1 - accuracy on wrong labels; the
# margin absorbs sampling noise on 500 images (3 sigma of a proportion is below 0.07).
DECOY_MARGIN = 0.10
# util.py records the numbers it printed; a later learner print of other numbers differs.
REPORT_TOLERANCE = 1e-9

UNTRACED_CODE = "legacy_labels_untraced"
# The number is the host's; what the run printed is never shown (it is learner-chosen).
MSG_SIZE_FEWER = gettext_noop(
    "makedataset() returned fewer images than the %(expected)s of the test set. Keep the "
    "line 'test_data= util.loaddata()' and do not drop images."
)
MSG_SIZE_MORE = gettext_noop(
    "makedataset() returned more images than the %(expected)s of the test set. Keep the "
    "line 'test_data= util.loaddata()' and do not add images."
)
MSG_NOT_RECORDED = gettext_noop(
    "util.accuracy(func_predict, test_data) from the server's util.py never finished: keep "
    "main() as in the course template, and do not replace or shadow util."
)
MSG_UNTRACED = gettext_noop(
    "The server could not follow how your func_predict uses test_label for every image (it "
    "compares np.argmax(test_label, axis=1) with your predictions; converting test_label to "
    "a list, a tensor or another library's type hides that). This run was not counted: "
    "compute the accuracy as in the course's common/ code, or submit with "
    "predict(test_data) as in the guide's template notebook."
)
MSG_NO_LINES = gettext_noop(
    "The run printed no 'Test loss:' and 'Test accuracy:' lines: main() must call "
    "util.accuracy(func_predict, test_data)."
)
MSG_NOT_NUMBER = gettext_noop(
    "func_predict must return (loss, accuracy) as numbers; the printed %(line)s was not a number."
)
MSG_OUT_OF_RANGE = gettext_noop(
    "The printed accuracy is not between 0 and 1: func_predict must return the accuracy "
    "as a fraction."
)

_LINE = re.compile(r"^Test (loss|accuracy):[ \t]?(.*)$", re.MULTILINE)


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
    size_error = _size_error(values["accuracy"], values["loss"], detail=detail)
    if size_error is not None:
        raise size_error
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
            detail=detail,
        )
    return numbers["loss"], numbers["accuracy"]


def _size_error(*printed: str, detail: str = "") -> ScoringError | None:
    """The course's size message among the printed values, as our own fixed error."""
    if SIZE_MESSAGES[0] in printed:
        message = MSG_SIZE_FEWER
    elif SIZE_MESSAGES[1] in printed:
        message = MSG_SIZE_MORE
    else:
        return None
    params = {"expected": EXPECTED_SIZE}
    return ScoringError(
        ErrorClass.WRONG_OUTPUT, "legacy_size_mismatch", message, params, detail=detail
    )


def score_recorded(
    out_dir: Path, labels: np.ndarray, stdout: str
) -> tuple[Metrics, list[str], np.ndarray]:
    """Metrics, notes and the recorded classes of a recording-mode legacy run.

    Computed as for the verified contract.

    The accuracy is ``correct / N``: what the course's util prints for code that computes
    each batch's accuracy as ``np.sum(y == t) / 500`` (the batch-weighted mean of exact
    counts is exact). The loss needs the learner's probabilities, seen only when the
    code multiplies the one-hot labels with ``log(y)``; otherwise it is None and a note
    says why. Raises WRONG_OUTPUT when nothing was recorded (charged) and
    LEGACY_UNTRACEABLE when the record is incomplete or ambiguous (not charged).
    """
    n = len(labels)
    classes, loss_terms = read_legacy_record(out_dir, n)
    if classes is None:
        values = [v.strip() for _, v in _LINE.findall(stdout)]
        error = _size_error(*values, detail=_tail(stdout, ""))
        if error is not None:
            raise error
        raise ScoringError(
            ErrorClass.WRONG_OUTPUT,
            "legacy_not_recorded",
            MSG_NOT_RECORDED,
            detail=_tail(stdout, ""),
        )
    never, ambiguous = int((classes == -1).sum()), int((classes == -2).sum())
    if never or ambiguous:
        raise ScoringError(
            ErrorClass.LEGACY_UNTRACEABLE,
            UNTRACED_CODE,
            MSG_UNTRACED,
            detail=(
                f"labels followed for {n - never - ambiguous} of {n} images; "
                f"never compared: {never}; compared with two classes or a non-class: {ambiguous}"
            ),
        )
    metrics = compute_metrics(classes, labels)
    loss = recorded_loss(loss_terms, labels)
    notes = []
    if loss is None:
        notes.append(
            "loss: not observable (func_predict picks probabilities with the labels as an "
            "index, which the server cannot see without handing the labels over)"
        )
    return dataclasses.replace(metrics, loss=loss), notes, classes


def recorded_loss(loss_terms: np.ndarray | None, labels: np.ndarray) -> float | None:
    """``-mean(log p[true])`` from rows of ``log(y)`` the code multiplied with the labels."""
    if loss_terms is None:
        return None
    true = np.argmax(labels, axis=1)
    picked = loss_terms[np.arange(len(true)), true]
    if not np.isfinite(picked).all():
        return None
    loss = float(-np.sum(picked) / len(true))
    return loss if math.isfinite(loss) else None


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
