"""manage.py demo_cohort DIST: a small cohort of demo learners who submitted the samples.

Run by ``scripts/demo`` after ``python -m samples build``, so the instructor pages have
something to show: a leaderboard, the cohort section, and the Similar submissions page,
where two learners handed in the same numpy CNN (a copied pair, byte-identical model
file and identical answers). The uploads go through the real intake and queue; the demo's
workers score them once they start. Run twice, it adds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser

from server.courses.management.commands.demo import DEMO_CODE
from server.courses.models import Course
from server.courses.services import enrollment_create
from server.submissions import intake
from server.submissions.models import Submission

# (email, name, sample zip). Two learners share numpy_cnn_params.zip: the copied pair.
COHORT = [
    ("aoki@example.com", "青木 陽菜", "numpy_cnn_params.zip"),
    ("ueda@example.com", "上田 翔", "numpy_cnn_params.zip"),
    ("kato@example.com", "加藤 結衣", "pytorch_cnn.zip"),
    ("sato@example.com", "佐藤 蓮", "legacy_numpy_mlp.zip"),
    ("tanaka@example.com", "田中 美咲", "keras_cnn.zip"),
]
PASSWORD = "demo-learner"


class Command(BaseCommand):
    help = "Enrol demo learners and submit the sample zips for them (scored by the workers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dist", type=Path, help="where python -m samples build put the zips")

    def handle(self, *args: Any, **options: Any) -> None:
        course = Course.objects.filter(code=DEMO_CODE).first()
        if course is None:
            raise CommandError("Run manage.py demo first.")
        dist: Path = options["dist"]
        queued = 0
        for email, name, sample in COHORT:
            zip_path = dist / sample
            if not zip_path.is_file():
                self.stderr.write(f"{sample} is not built: {name} submits nothing.")
                continue
            learner = enrollment_create(course=course, email=email, name=name, password=PASSWORD)
            if Submission.objects.filter(course=course, learner=learner.user).exists():
                continue
            upload = SimpleUploadedFile(sample, zip_path.read_bytes(), "application/zip")
            try:
                intake.submission_create(learner=learner.user, course=course, upload=upload)
            except intake.SubmissionRejected as rejected:
                self.stderr.write(f"{name}: {rejected.message}")
                continue
            queued += 1
        self.stdout.write(f"Demo cohort: {queued} sample submission(s) queued for scoring.")
