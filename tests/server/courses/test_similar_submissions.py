"""Instructors see pairs of learners whose submissions look copied, with the numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.urls import reverse

from server.courses.services import enrollment_create
from server.submissions import similarity
from tests.factories import make_submission


def _answers(true: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    """A model's answers: right about ``accuracy`` of the time, wrong classes at random."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(true)) > accuracy
    answers = np.where(wrong, (true + rng.integers(1, 15, len(true))) % 15, true)
    return answers.astype(np.int8)


def test_a_copied_model_is_listed_and_independent_ones_are_not(client, course, instructor):
    true = np.load(Path(course.active_testset.directory) / "test_label.npy").argmax(axis=1)
    learners = [
        enrollment_create(course=course, email=f"l{i}@example.com", name=f"L{i}").user
        for i in range(4)
    ]
    original = _answers(true, 0.3, seed=1)
    copy = original.copy()
    copy[:3] = (copy[:3] + 1) % 15  # a few answers changed
    for learner, answers in zip(
        learners, [original, copy, _answers(true, 0.3, 2), _answers(true, 0.3, 3)], strict=True
    ):
        make_submission(
            course, learner, accuracy=float(np.mean(answers == true)), predicted=answers.tobytes()
        )
    report = similarity.similar_pairs(course)
    assert report.learners == 4 and report.compared == 6
    # Enough shared mistakes that the independent pairs were really judged, not skipped.
    true_wrong = [(a != true) for a in (original, copy)]
    assert int((true_wrong[0] & true_wrong[1]).sum()) >= 30
    listed = {frozenset((p.first.learner_id, p.second.learner_id)) for p in report.pairs}
    assert listed == {frozenset((learners[0].pk, learners[1].pk))}
    pair = report.pairs[0]
    assert pair.evidence is not None and pair.evidence.agreement > 0.9

    client.force_login(instructor)
    page = client.get(reverse("similar_submissions", args=[course.code])).content.decode()
    assert "L0" in page and "L1" in page and 'data-testid="similar-pairs"' in page


def test_a_byte_identical_model_file_is_listed_whatever_the_answers(course):
    a = enrollment_create(course=course, email="a@example.com", name="A").user
    b = enrollment_create(course=course, email="b@example.com", name="B").user
    make_submission(course, a, accuracy=0.9, model_files={"model.pkl": "ab" * 32})
    make_submission(course, b, accuracy=0.8, model_files={"weights/mine.pkl": "ab" * 32})
    make_submission(course, b, accuracy=0.7, model_files={"other.pkl": "cd" * 32})
    report = similarity.similar_pairs(course)
    assert [(p.shared_files, p.evidence) for p in report.pairs] == [(["model.pkl"], None)]


def test_learners_never_reach_the_page(client, course, learner):
    client.force_login(learner)
    assert client.get(reverse("similar_submissions", args=[course.code])).status_code == 404
