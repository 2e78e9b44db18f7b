"""Scores of a set of predictions against the one-hot test labels.

``compute_metrics`` takes what ``scorer.predictions.read_predictions`` returns:

* int (N,) class ids → accuracy etc., no loss (``loss is None``, ``score_kind="class_ids"``);
* float (N, 15) scores. If every value is in [0, 1] and every row sums to 1 within 1e-3
  they are taken as probabilities (``"probabilities"``); otherwise as logits
  (``"logits"``) and turned into probabilities with a numerically stable softmax.

The loss is the course's ``cross_entropy_error``: ``-sum(log(p[t] + 1e-7)) / N`` where
``p[t]`` is the probability given to the true class. The predicted class of a score row
is its argmax (first index on ties, as ``np.argmax``). ``confusion[i][j]`` counts images
of true class i predicted as j. A class with no test images gets 0.0 in
``per_class_accuracy`` and is left out of ``balanced_accuracy`` (the mean of the
per-class accuracies of the classes present).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

N_CLASSES = 15
# Class ids 0-14 in the course's order: the one list every report and page uses.
CLASS_NAMES = "アイウエオカキクケコサシスセソ"
# Same epsilon as the course's cross_entropy_error.
LOG_EPSILON = 1e-7
PROBABILITY_TOLERANCE = 1e-3

ScoreKind = Literal["class_ids", "probabilities", "logits"]


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    loss: float | None
    per_class_accuracy: list[float]
    balanced_accuracy: float
    confusion: list[list[int]]
    n: int
    score_kind: ScoreKind

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data for storage."""
        return asdict(self)


def score_kind(scores: np.ndarray) -> ScoreKind:
    if scores.ndim == 1:
        return "class_ids"
    in_range = bool(((scores >= 0.0) & (scores <= 1.0)).all())
    sums_to_one = bool((np.abs(scores.sum(axis=1) - 1.0) <= PROBABILITY_TOLERANCE).all())
    return "probabilities" if in_range and sums_to_one else "logits"


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def cross_entropy_error(probabilities: np.ndarray, true: np.ndarray) -> float:
    picked = probabilities[np.arange(len(true)), true]
    return float(-np.sum(np.log(picked + LOG_EPSILON)) / len(true))


def _true_classes(labels_onehot: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels_onehot)
    if labels.ndim != 2 or labels.shape[1] != N_CLASSES:
        raise ValueError(f"labels must be one-hot (N, {N_CLASSES}), got {labels.shape}")
    if not ((labels == 0) | (labels == 1)).all() or not (labels.sum(axis=1) == 1).all():
        raise ValueError("labels must have exactly one 1 per row")
    return np.argmax(labels, axis=1)


def compute_metrics(predictions: np.ndarray, labels_onehot: np.ndarray) -> Metrics:
    """Accuracy, loss, per-class and balanced accuracy and confusion matrix (see module doc)."""
    true = _true_classes(labels_onehot)
    predictions = np.asarray(predictions)
    if predictions.shape[0] != len(true) or predictions.ndim not in (1, 2):
        raise ValueError(f"predictions {predictions.shape} do not match {len(true)} labels")
    if len(true) == 0:
        raise ValueError("no labels to score against")

    kind = score_kind(predictions)
    loss: float | None = None
    if kind == "class_ids":
        predicted = predictions.astype(np.int64)
    else:
        scores = predictions.astype(np.float64)
        probabilities = scores if kind == "probabilities" else softmax(scores)
        loss = cross_entropy_error(probabilities, true)
        predicted = np.argmax(scores, axis=1)

    confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(confusion, (true, predicted), 1)
    support = confusion.sum(axis=1)
    correct = np.diag(confusion)
    present = support > 0
    per_class = np.where(present, correct / np.maximum(support, 1), 0.0)
    return Metrics(
        accuracy=float(correct.sum() / len(true)),
        loss=loss,
        per_class_accuracy=[float(x) for x in per_class],
        balanced_accuracy=float(per_class[present].mean()),
        confusion=confusion.tolist(),
        n=int(len(true)),
        score_kind=kind,
    )


def confidence(scores: np.ndarray) -> np.ndarray:
    """The probability a model gave its own answer, per image, from (N, 15) scores."""
    kind = score_kind(scores)
    probabilities = scores if kind == "probabilities" else softmax(scores)
    return np.asarray(probabilities.max(axis=1), dtype=np.float64)


def mistakes_by_confusion(
    predicted: np.ndarray,
    true: np.ndarray,
    confidences: np.ndarray | None = None,
    *,
    pairs: int = 6,
    per_pair: int = 8,
) -> list[dict[str, Any]]:
    """The images a model gets wrong, grouped by its most frequent confusions.

    For the learner's gallery of misclassified *training* images (public data: never
    call this with the hidden test set). Each group: ``true``, ``predicted``, ``count``
    and up to ``per_pair`` ``images`` (index and, with scores, the confidence of the
    wrong answer, highest first: the model's most confident mistakes are the telling ones).
    """
    wrong = np.flatnonzero(predicted != true)
    counts: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        counts.setdefault((int(true[i]), int(predicted[i])), []).append(int(i))
    groups = []
    for (t, p), indices in sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:pairs]:
        if confidences is not None:
            indices = sorted(indices, key=lambda i: -confidences[i])
        images = [
            {
                "index": i,
                "confidence": None if confidences is None else round(float(confidences[i]), 2),
            }
            for i in indices[:per_pair]
        ]
        groups.append({"true": t, "predicted": p, "count": len(indices), "images": images})
    return groups


def _rounded(confidences: np.ndarray | None, index: int) -> float | None:
    # Learner-chosen numbers are shown, so kept, only to two decimals.
    return None if confidences is None else round(float(confidences[index]), 2)
