"""Evidence that two learners' submissions may be copies: a prompt to look, never a verdict.

Two models trained independently get many of the same images wrong (the hard ones), and
often pick the same wrong class for them (ソ read as ン-like シ): on the demo data, pairs of
independently trained nets of 53-66 % accuracy agreed on 45-66 % of the images both got
wrong. A copied model (or a copy with a few answers changed) agrees on nearly all of them.
So the statistic is the **agreement on shared mistakes**::

    both_wrong = #{i : a_i != y_i and b_i != y_i}
    same_wrong = #{i : a_i == b_i != y_i}
    agreement  = same_wrong / both_wrong

and a pair is listed when ``agreement >= AGREEMENT_FLAG`` over at least ``MIN_BOTH_WRONG``
shared mistakes, or when it is an outlier among the cohort's pairs (more than
``OUTLIER_MADS`` median absolute deviations above the median agreement). A test against
independence (each model's own confusion rates per class) is computed too, for the
instructor's reading, but not used to flag: image-level difficulty makes every honest
pair "significant" (z of 58-76 on the demo data). Byte-identical model files are listed
separately. ``docs/copy-detection.md`` explains the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_CLASSES = 15
AGREEMENT_FLAG = 0.9
MIN_BOTH_WRONG = 30
OUTLIER_MADS = 6.0


@dataclass(frozen=True)
class PairEvidence:
    both_wrong: int
    same_wrong: int
    # same_wrong expected if each model chose its wrong class independently, given the
    # true class, at its own confusion rates; and how far above that the pair lies.
    expected_same_wrong: float
    z: float

    @property
    def agreement(self) -> float:
        return self.same_wrong / self.both_wrong if self.both_wrong else 0.0


def pair_evidence(a: np.ndarray, b: np.ndarray, true: np.ndarray) -> PairEvidence:
    """The agreement of two prediction vectors (class ids) on the images both got wrong."""
    a, b, true = (np.asarray(v, dtype=np.int64) for v in (a, b, true))
    if not (a.shape == b.shape == true.shape):
        raise ValueError("predictions and labels must have the same length")
    both = (a != true) & (b != true)
    same = int(((a == b) & both).sum())
    q = np.zeros(N_CLASSES)
    for c in range(N_CLASSES):
        q[c] = float(np.dot(_wrong_rates(a, true, c), _wrong_rates(b, true, c)))
    picked = q[true[both]]
    expected = float(picked.sum())
    spread = math.sqrt(float((picked * (1 - picked)).sum()))
    z = (same - expected) / spread if spread > 0 else 0.0
    return PairEvidence(int(both.sum()), same, expected, z)


def _wrong_rates(predicted: np.ndarray, true: np.ndarray, c: int) -> np.ndarray:
    """How often, among its mistakes on class ``c``, a model answers each class."""
    mistakes = predicted[(true == c) & (predicted != c)]
    counts = np.bincount(mistakes, minlength=N_CLASSES)[:N_CLASSES].astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def flagged(evidence: PairEvidence, cohort_agreements: Sequence[float]) -> bool:
    """Whether to list the pair: enough shared mistakes, and agreement absolute or outlying."""
    if evidence.both_wrong < MIN_BOTH_WRONG:
        return False
    if evidence.agreement >= AGREEMENT_FLAG:
        return True
    values = np.asarray(cohort_agreements, dtype=np.float64)
    if len(values) < 10:  # too few pairs to know what is usual
        return False
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) or 0.01
    return evidence.agreement > median + OUTLIER_MADS * mad
