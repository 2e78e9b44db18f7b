"""What the worker hands the scorer from the course's settings (``score_config``)."""

from __future__ import annotations

import pytest

from sandbox.backends import get_backend
from server.submissions.scoring import score_config
from tests.factories import make_submission


@pytest.mark.parametrize("allowed", [False, True])
def test_the_scoring_config_follows_the_courses_labelled_legacy_setting(course, learner, allowed):
    course.legacy_labelled_allowed = allowed
    course.save(update_fields=["legacy_labelled_allowed"])
    submission = make_submission(course, learner, status="queued")
    config = score_config(submission, get_backend("process"))
    assert (config.legacy_allowed, config.legacy_labelled_allowed) == (True, allowed)
