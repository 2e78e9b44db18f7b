"""Submissions that look copied, for instructors: a prompt to look, never a verdict.

Two kinds of evidence, explained in ``docs/copy-detection.md``: learners' best counting
submissions whose answers agree on the hidden test images both models get wrong far
more than independent models do (``scorer.similarity``), and submissions of different
learners that contain a byte-identical model file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from scorer.similarity import PairEvidence, compare, flagged, profile
from server.courses.models import Course
from server.submissions.models import Status, Submission


@dataclass
class SimilarPair:
    first: Submission
    second: Submission
    evidence: PairEvidence | None = None
    shared_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SimilarityReport:
    pairs: list[SimilarPair]
    learners: int
    compared: int
    median_agreement: float | None


def similar_pairs(course: Course) -> SimilarityReport:
    testset = course.active_testset
    best = _best_with_answers(course, testset.pk if testset else None)
    pairs: dict[tuple[int, int], SimilarPair] = {}
    agreements: list[float] = []
    evidence_by_pair: list[tuple[Submission, Submission, PairEvidence]] = []
    if testset is not None and len(best) > 1:
        true = np.load(Path(testset.directory) / "test_label.npy").argmax(axis=1)
        profiles = {}
        for submission in best:
            answers = np.frombuffer(bytes(submission.predicted or b""), dtype=np.int8)
            if len(answers) == len(true):
                profiles[submission.pk] = profile(answers, true)
        comparable = [s for s in best if s.pk in profiles]
        for a, b in combinations(comparable, 2):
            evidence = compare(profiles[a.pk], profiles[b.pk], true)
            agreements.append(evidence.agreement)
            evidence_by_pair.append((a, b, evidence))
    for a, b, evidence in evidence_by_pair:
        if flagged(evidence, agreements):
            pairs[_key(a, b)] = SimilarPair(a, b, evidence=evidence)
    for a, b, name in _identical_model_files(course):
        pair = pairs.setdefault(_key(a, b), SimilarPair(a, b))
        pair.shared_files.append(name)
    ordered = sorted(
        pairs.values(),
        key=lambda p: (-len(p.shared_files), -(p.evidence.agreement if p.evidence else 0.0)),
    )
    return SimilarityReport(
        pairs=ordered,
        learners=len(best),
        compared=len(agreements),
        median_agreement=float(np.median(agreements)) if agreements else None,
    )


def _key(a: Submission, b: Submission) -> tuple[int, int]:
    return (min(a.learner_id, b.learner_id), max(a.learner_id, b.learner_id))


def _best_with_answers(course: Course, testset_id: int | None) -> list[Submission]:
    """Each learner's best counting submission on the active test set that kept answers."""
    if testset_id is None:
        return []
    rows = (
        Submission.objects.filter(
            course=course, status=Status.SCORED, testset_id=testset_id, predicted__isnull=False
        )
        .counting()
        .select_related("learner")
        .order_by("learner_id", "-accuracy", "created_at")
    )
    best: dict[int, Submission] = {}
    for row in rows:
        best.setdefault(row.learner_id, row)
    return list(best.values())


def _identical_model_files(course: Course) -> Iterable[tuple[Submission, Submission, str]]:
    """Pairs of different learners' submissions holding a file with the same SHA-256."""
    owners: dict[str, dict[int, tuple[Submission, str]]] = {}
    rows = (
        Submission.objects.filter(course=course, status=Status.SCORED)
        .exclude(model_files={})
        .select_related("learner")
        .order_by("created_at")
    )
    for row in rows:
        for name, digest in (row.model_files or {}).items():
            owners.setdefault(str(digest), {}).setdefault(row.learner_id, (row, str(name)))
    for by_learner in owners.values():
        for (a, name), (b, _other) in combinations(by_learner.values(), 2):
            yield a, b, name
