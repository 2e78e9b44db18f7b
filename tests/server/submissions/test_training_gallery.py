"""The gallery of misclassified training images: public images only, for the learner."""

from __future__ import annotations

import io

import numpy as np
from django.urls import reverse
from PIL import Image

from scorer.testset import TRAIN_DATA_FILE
from tests.factories import make_submission, real_metrics

MISTAKES = [
    {"true": 13, "predicted": 14, "count": 7, "images": [{"index": 2, "confidence": 0.91}]},
    {"true": 0, "predicted": 5, "count": 3, "images": [{"index": 0, "confidence": None}]},
]


def _with_training_set(course) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Three distinct public images stored beside the course's active test set."""
    images = np.full((3, 1, 28, 28), 255.0)
    images[0, 0, :14] = 0.0  # top half dark
    images[2, 0, :, :14] = 0.0  # left half dark
    np.save(f"{course.active_testset.directory}/{TRAIN_DATA_FILE}", images)
    return images


def test_the_result_page_shows_the_groups_and_serves_only_training_images(
    client, course, learner, other_learner
):
    images = _with_training_set(course)
    metrics = {**real_metrics(0.9), "train_accuracy": 0.97, "train_mistakes": MISTAKES}
    submission = make_submission(course, learner, accuracy=0.9, metrics=metrics)
    client.force_login(learner)
    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    assert 'data-testid="training-mistakes"' in page
    assert "セ" in page and "ソ" in page and "0.91" in page

    response = client.get(reverse("training_image", args=[submission.pk, 2]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(response.content)))
    assert picture.shape == (84, 84)
    # The left half is dark, as in training image 2: it is that image, enlarged.
    assert picture[:, :40].max() == 0 and picture[:, 44:].min() == 255
    assert images.shape[0] == 3

    # Past the end of the training set (the test set is bigger): nothing, ever.
    assert client.get(reverse("training_image", args=[submission.pk, 3])).status_code == 404
    client.force_login(other_learner)
    assert client.get(reverse("training_image", args=[submission.pk, 2])).status_code == 404


def test_without_a_training_set_there_is_no_gallery(client, course, learner):
    submission = make_submission(course, learner, accuracy=0.9, metrics=real_metrics(0.9))
    client.force_login(learner)
    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    assert 'data-testid="training-mistakes"' not in page
    assert client.get(reverse("training_image", args=[submission.pk, 0])).status_code == 404
