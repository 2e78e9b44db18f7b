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


@dataclass(frozen=True)
class Profile:
    """One model's answers, prepared once for comparison with every other model."""

    answers: np.ndarray
    wrong: np.ndarray
    # rates[c, j]: among its mistakes on true class c, how often it answers j.
    rates: np.ndarray


def profile(answers: np.ndarray, true: np.ndarray) -> Profile:
    answers, true = np.asarray(answers, dtype=np.int64), np.asarray(true, dtype=np.int64)
    if answers.shape != true.shape:
        raise ValueError("predictions and labels must have the same length")
    wrong = answers != true
    counts = np.zeros((N_CLASSES, N_CLASSES))
    np.add.at(counts, (true[wrong], answers[wrong]), 1)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return Profile(answers, wrong, rates)


def pair_evidence(a: np.ndarray, b: np.ndarray, true: np.ndarray) -> PairEvidence:
    """The agreement of two prediction vectors (class ids) on the images both got wrong."""
    return compare(profile(a, true), profile(b, true), np.asarray(true, dtype=np.int64))


def compare(a: Profile, b: Profile, true: np.ndarray) -> PairEvidence:
    """``pair_evidence`` from prepared profiles: a few vector operations per pair, so a
    cohort of 500 (124,750 pairs) is compared in seconds."""
    both = a.wrong & b.wrong
    same = int(np.count_nonzero(both & (a.answers == b.answers)))
    q = (a.rates * b.rates).sum(axis=1)  # per true class: chance of the same wrong answer
    picked = q[true[both]]
    expected = float(picked.sum())
    spread = math.sqrt(float((picked * (1 - picked)).sum()))
    z = (same - expected) / spread if spread > 0 else 0.0
    return PairEvidence(int(np.count_nonzero(both)), same, expected, z)


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
