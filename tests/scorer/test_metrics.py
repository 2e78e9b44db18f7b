"""compute_metrics against an independent computation written with plain loops."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scorer.metrics import compute_metrics

N_CLASSES = 15


def onehot(classes: list[int]) -> np.ndarray:
    labels = np.zeros((len(classes), N_CLASSES), dtype=np.int32)
    for row, cls in enumerate(classes):
        labels[row, cls] = 1
    return labels


def reference(predicted: list[int], true: list[int]) -> dict:
    """Accuracy, per-class accuracy, balanced accuracy and confusion, by loops."""
    confusion = [[0] * N_CLASSES for _ in range(N_CLASSES)]
    for p, t in zip(predicted, true, strict=True):
        confusion[t][p] += 1
    per_class, present = [], []
    for cls in range(N_CLASSES):
        support = sum(confusion[cls])
        per_class.append(confusion[cls][cls] / support if support else 0.0)
        if support:
            present.append(per_class[-1])
    correct = sum(1 for p, t in zip(predicted, true, strict=True) if p == t)
    return {
        "accuracy": correct / len(true),
        "per_class": per_class,
        "balanced": sum(present) / len(present),
        "confusion": confusion,
    }


def loop_argmax(row: list[float]) -> int:
    best = 0
    for i, value in enumerate(row):
        if value > row[best]:
            best = i
    return best


def loop_loss(probabilities: list[list[float]], true: list[int]) -> float:
    return -sum(math.log(row[t] + 1e-7) for row, t in zip(probabilities, true, strict=True)) / len(
        true
    )


def loop_softmax(row: list[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / sum(exps) for e in exps]


@pytest.fixture
def true() -> list[int]:
    rng = np.random.RandomState(0)
    # Class 14 absent: it must not drag the balanced accuracy down.
    return [int(c) for c in rng.randint(0, 14, size=300)]


def test_class_ids_match_the_loop_computation_and_have_no_loss(true: list[int]) -> None:
    rng = np.random.RandomState(1)
    predicted = [t if rng.rand() < 0.7 else int(rng.randint(0, 15)) for t in true]
    metrics = compute_metrics(np.array(predicted, dtype=np.int64), onehot(true))
    expected = reference(predicted, true)

    assert metrics.score_kind == "class_ids" and metrics.loss is None
    assert metrics.accuracy == pytest.approx(expected["accuracy"], abs=1e-12)
    assert metrics.per_class_accuracy == pytest.approx(expected["per_class"], abs=1e-12)
    assert metrics.balanced_accuracy == pytest.approx(expected["balanced"], abs=1e-12)
    assert metrics.confusion == expected["confusion"]
    assert metrics.per_class_accuracy[14] == 0.0
    assert metrics.n == 300


def test_logits_are_softmaxed_for_the_course_loss(true: list[int]) -> None:
    logits = np.random.RandomState(2).randn(len(true), N_CLASSES) * 4 + 1000  # stable softmax
    metrics = compute_metrics(logits, onehot(true))
    rows = logits.tolist()
    predicted = [loop_argmax(r) for r in rows]
    expected = reference(predicted, true)

    assert metrics.score_kind == "logits"
    assert metrics.loss == pytest.approx(loop_loss([loop_softmax(r) for r in rows], true), rel=1e-9)
    assert metrics.accuracy == pytest.approx(expected["accuracy"], abs=1e-12)
    assert metrics.confusion == expected["confusion"]


def test_probabilities_are_used_as_they_are(true: list[int]) -> None:
    raw = np.random.RandomState(3).rand(len(true), N_CLASSES)
    probabilities = raw / raw.sum(axis=1, keepdims=True)
    probabilities[:, 0] += 5e-4  # still within the 1e-3 tolerance
    metrics = compute_metrics(probabilities, onehot(true))

    assert metrics.score_kind == "probabilities"
    assert metrics.loss == pytest.approx(loop_loss(probabilities.tolist(), true), rel=1e-9)


def test_rows_not_summing_to_one_are_logits(true: list[int]) -> None:
    raw = np.random.RandomState(4).rand(len(true), N_CLASSES) * 0.5  # in [0,1], sums ~3.75
    metrics = compute_metrics(raw, onehot(true))

    assert metrics.score_kind == "logits"
    expected = loop_loss([loop_softmax(r) for r in raw.tolist()], true)
    assert metrics.loss == pytest.approx(expected, rel=1e-9)


def test_a_perfect_onehot_prediction_has_the_course_floor_loss() -> None:
    true = [0, 1, 2, 14]
    metrics = compute_metrics(onehot(true).astype(np.float64), onehot(true))

    assert metrics.accuracy == 1.0 and metrics.balanced_accuracy == 1.0
    assert metrics.loss == pytest.approx(-math.log(1 + 1e-7))


def test_to_dict_is_json_storable(true: list[int]) -> None:
    metrics = compute_metrics(np.zeros(len(true), dtype=np.int64), onehot(true))
    stored = json.loads(json.dumps(metrics.to_dict()))

    assert stored["confusion"] == metrics.confusion
    assert set(stored) == {
        "accuracy",
        "loss",
        "per_class_accuracy",
        "balanced_accuracy",
        "confusion",
        "n",
        "score_kind",
    }


def test_mismatched_lengths_or_bad_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match 2 labels"):
        compute_metrics(np.zeros(3, dtype=np.int64), onehot([0, 1]))
    bad = onehot([0, 1])
    bad[0, 3] = 1
    with pytest.raises(ValueError, match="exactly one 1 per row"):
        compute_metrics(np.zeros(2, dtype=np.int64), bad)
