"""Copy detection on the demo data: independent models are not listed, a copied one is."""

from __future__ import annotations

import numpy as np
import pytest

import demodata
from scorer.similarity import MIN_BOTH_WRONG, flagged, pair_evidence
from tests.learner_models import trained_params, verified_numpy_forward


@pytest.fixture(scope="module")
def independent() -> tuple[list[np.ndarray], np.ndarray]:
    """Three models trained independently (other sizes, other epochs) and the truth."""
    x, t = demodata.load("train")
    data, labels = demodata.load("test")
    predictions = [
        verified_numpy_forward(trained_params(x, t, hidden=h, epochs=e), data).argmax(axis=1)
        for h, e in ((16, 4), (32, 3), (48, 3))
    ]
    return predictions, labels.argmax(axis=1)


def test_independently_trained_models_are_not_listed(independent) -> None:  # type: ignore[no-untyped-def]
    predictions, true = independent
    pairs = [(0, 1), (0, 2), (1, 2)]
    evidence = [pair_evidence(predictions[i], predictions[j], true) for i, j in pairs]
    agreements = [e.agreement for e in evidence]
    for e in evidence:
        assert e.both_wrong >= MIN_BOTH_WRONG
        # They share mistakes and sometimes the same wrong class...
        assert e.agreement < 0.8
        # ...more than independence would say: why z is shown but never used to flag.
        assert e.z > 3
        assert not flagged(e, agreements)


def test_a_copied_model_with_a_few_answers_changed_is_listed(independent) -> None:  # type: ignore[no-untyped-def]
    predictions, true = independent
    rng = np.random.default_rng(0)
    copy = predictions[0].copy()
    changed = rng.random(len(copy)) < 0.02
    copy[changed] = rng.integers(0, 15, int(changed.sum()))
    evidence = pair_evidence(predictions[0], copy, true)
    honest = [pair_evidence(predictions[i], predictions[j], true).agreement
              for i, j in ((0, 1), (0, 2), (1, 2))]  # fmt: skip
    assert evidence.agreement > 0.95
    assert flagged(evidence, honest)


def test_too_few_shared_mistakes_say_nothing() -> None:
    true = np.arange(300) % 15
    a = true.copy()
    a[:5] = (true[:5] + 1) % 15  # five mistakes, both make them
    evidence = pair_evidence(a, a.copy(), true)
    assert (evidence.both_wrong, evidence.same_wrong, evidence.agreement) == (5, 5, 1.0)
    assert not flagged(evidence, [])
