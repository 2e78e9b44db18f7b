"""The demo's cohort: five learners who submitted the samples, two of them the same zip."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

from server.courses.management.commands.demo import DEMO_CODE
from server.courses.management.commands.demo_cohort import COHORT
from server.submissions.models import Status, Submission
from tests.server.courses.web import notebook_zip


def test_the_demo_cohort_submits_the_samples_once_with_a_copied_pair(
    tmp_path: Path, settings_dirs, django_capture_on_commit_callbacks, transactional_db
):
    call_command("demo", stdout=io.StringIO())
    dist = tmp_path / "dist"
    dist.mkdir()
    for _email, _name, sample in COHORT:
        (dist / sample).write_bytes(notebook_zip(top=sample.removesuffix(".zip")))
    with django_capture_on_commit_callbacks(execute=False):
        call_command("demo_cohort", str(dist), stdout=io.StringIO())
        call_command("demo_cohort", str(dist), stdout=io.StringIO())  # adds nothing
    rows = Submission.objects.filter(course__code=DEMO_CODE).select_related("learner")
    assert rows.count() == len(COHORT)
    assert {r.status for r in rows} == {Status.QUEUED}
    shared = [r for r in rows if r.original_name == "numpy_cnn_params.zip"]
    assert len(shared) == 2 and shared[0].sha256 == shared[1].sha256
    assert shared[0].learner_id != shared[1].learner_id
