"""The training images a learner's model gets wrong, as the course asks learners to study.

Only the course's *public* training set is ever read here (``scorer.testset``'s
``TRAIN_DATA_FILE`` beside the stored test set): a hidden test image never reaches a
page. Groups and indices come from the scorer (``scorer.metrics.mistakes_by_confusion``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.http import Http404, HttpResponse
from PIL import Image

from scorer.metrics import CLASS_NAMES
from scorer.testset import TRAIN_DATA_FILE
from server.submissions.models import Submission

THUMBNAIL_PIXELS = 84  # 3x the 28x28 image, sharp pixels: readable on a phone too


@dataclass(frozen=True)
class GalleryImage:
    index: int
    confidence: float | None


@dataclass(frozen=True)
class MistakeGroup:
    true_label: str
    predicted_label: str
    count: int
    images: list[GalleryImage]


def mistake_groups(submission: Submission) -> list[MistakeGroup]:
    stored = (submission.metrics or {}).get("train_mistakes") or []
    groups = []
    for group in stored:
        try:
            true, predicted = int(group["true"]), int(group["predicted"])
            images = [
                GalleryImage(int(image["index"]), image.get("confidence"))
                for image in group["images"]
            ]
            groups.append(
                MistakeGroup(CLASS_NAMES[true], CLASS_NAMES[predicted], int(group["count"]), images)
            )
        except (KeyError, TypeError, ValueError, IndexError):
            continue  # a row from an older release: show the others
    return groups


def training_image_png(submission: Submission, index: int) -> HttpResponse:
    """One public training image, enlarged, as PNG; 404 outside the training set."""
    testset = submission.testset
    if testset is None:
        raise Http404
    path = Path(testset.directory) / TRAIN_DATA_FILE
    if not path.is_file():
        raise Http404
    images = np.load(path, mmap_mode="r", allow_pickle=False)
    if not 0 <= index < len(images):
        raise Http404
    pixels = np.clip(np.asarray(images[index]).reshape(28, 28), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels, mode="L").resize(
        (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS), Image.Resampling.NEAREST
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    response = HttpResponse(buffer.getvalue(), content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"
    return response
