"""The GPU images (Dockerfile, Dockerfile.tensorflow) pin what the offline CPU image pins.

A Keras or PyTorch submission must score the same on a CPU worker and on a GPU worker,
so the frameworks and numpy are the same versions in every image; only the builds differ
(torch +cpu vs CUDA, tensorflow-cpu vs tensorflow[and-cuda]).
"""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parents[2] / "sandbox" / "image"


def cpu_pins() -> dict[str, str]:
    text = (IMAGE_DIR / "requirements-cpu.txt").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.MULTILINE))


def dockerfile_args(name: str) -> dict[str, str]:
    text = (IMAGE_DIR / name).read_text()
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))


def test_the_gpu_images_pin_the_cpu_images_framework_versions() -> None:
    pins = cpu_pins()
    cuda = dockerfile_args("Dockerfile")
    tensorflow = dockerfile_args("Dockerfile.tensorflow")
    assert cuda["TORCH_VERSION"] == pins["torch"].removesuffix("+cpu")
    assert tensorflow["TENSORFLOW_VERSION"] == pins["tensorflow-cpu"]
    assert tensorflow["KERAS_VERSION"] == pins["keras"]
    # Everything else comes from requirements-cpu.txt itself, less the builds swapped out.
    cuda_text = (IMAGE_DIR / "Dockerfile").read_text()
    assert "grep -v '^torch==' /tmp/requirements-cpu.txt" in cuda_text
    tf_text = (IMAGE_DIR / "Dockerfile.tensorflow").read_text()
    numpy_pins = set(re.findall(r'"numpy==([^"]+)"', tf_text))
    assert numpy_pins == {pins["numpy"]}
    assert "pip uninstall -y --break-system-packages tensorflow-cpu" in tf_text
