"""Sandbox benchmark: the same zips scored through every backend, against the floor.

The floor is the bare process (``sandbox.process_backend``): the harness run by plain
Python, no isolation, no queue. Every other mode runs the very same ``score_zip`` call
with another backend: Docker cold (one fresh container per run), Docker warm (a
pre-started single-use container, ``sandbox.warm``), bubblewrap. Modes are interleaved
within each repetition so that load from other processes spreads over all of them, and
one untimed run per sample and mode comes first (page cache, image layers, the pool).

Per run we keep ``total`` (``score_zip`` from zip to verdict), ``sandbox`` (the backend's
``run``: what isolation changes) and the harness's own ``setup``/``predict`` split.
Ratios are medians over the floor's median. ``--gpu`` runs a CUDA variant of the
PyTorch sample on the first GPU (image ``katakana-sandbox:gpu``); it needs a GPU host.

``before_image`` adds ``docker-before`` and ``docker-warm-before``: the same cold and warm
runs on another image (an earlier recipe's ``katakana-sandbox:cpu-<hash>``), interleaved
with the others, so what a change of the image costs is measured side by side in one
run. Samples that import a framework the earlier image may lack (Keras) are not run on it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.base import Limits, SandboxBackend
from scorer.pipeline import ScoreConfig, score_zip

IMAGE_CPU = "katakana-sandbox:cpu"
IMAGE_GPU = "katakana-sandbox:gpu"
MODES = ("process", "docker", "docker-warm", "bwrap")
FLOOR = "process"
SAMPLE_NAMES = ("legacy_numpy_mlp", "numpy_cnn_params", "pytorch_cnn", "keras_cnn")
BEFORE = "-before"  # suffix of the modes that run on ``before_image``
# Samples needing something only the current image is sure to have.
CURRENT_IMAGE_ONLY = ("keras_cnn",)
Log = Callable[[str], None]


@dataclass(frozen=True)
class Sample:
    name: str
    zip_path: Path
    source: str


# --------------------------------------------------------------------------- inputs


def prepare_samples(work: Path, log: Log) -> list[Sample]:
    """A minimal submission, then the sample zips (samples.build, built if missing)."""
    minimal = minimal_sample(work)
    try:
        from samples.build import DIST, build
    except ImportError:
        return [minimal, *_fallback_samples(work, log)]
    missing = [n for n in SAMPLE_NAMES if not (DIST / f"{n}.zip").is_file()]
    if missing:
        log(f"building samples {missing} (python -m samples build)")
        build(missing, dist=DIST, log=log)
    return [minimal, *(Sample(n, DIST / f"{n}.zip", "samples.build") for n in SAMPLE_NAMES)]


def minimal_sample(work: Path) -> Sample:
    """A verified notebook whose predict does no work: what is left is the fixed cost."""
    from tests.learner_models import write_notebook, zip_folder

    cell = (
        "import numpy as np\n\n\ndef predict(test_data):\n"
        "    return np.zeros(len(test_data), dtype=np.int64)\n"
    )
    folder = work / "src" / "minimal"
    write_notebook(folder, cell)
    return Sample("minimal_verified", zip_folder(folder, work / "minimal.zip"), "bench")


def _fallback_samples(work: Path, log: Log) -> list[Sample]:
    # Without samples/: the test builders (an MLP, not a CNN, for the numpy verified one).
    from tests import learner_models as lm

    log("samples/ not found: building stand-ins with tests/learner_models.py")
    x, t = lm.make_dataset(100, seed=0)
    builders = {
        "legacy_numpy_mlp": lambda f: lm.build_legacy_template(f, x, t),
        "numpy_mlp_params": lambda f: lm.build_verified_numpy(f, lm.trained_params(x, t)),
        "pytorch_mlp": lambda f: lm.build_torch(f, x, t),
    }
    out = []
    for name, builder in builders.items():
        folder = builder(work / "src" / name)
        out.append(
            Sample(name, lm.zip_folder(folder, work / f"{name}.zip"), "tests.learner_models")
        )
    return out


def gpu_variant(sample: Sample, work: Path) -> Sample | None:
    """The PyTorch sample with its model and batches moved to CUDA (timing only)."""
    replacements = {
        "model.eval()": "model = model.cuda().eval()",
        "model(x).numpy()": "model(x.cuda()).cpu().numpy()",
    }
    target = work / f"{sample.name}_cuda.zip"
    changed = 0
    with zipfile.ZipFile(sample.zip_path) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".ipynb"):
                text = data.decode("utf-8")
                for old, new in replacements.items():
                    changed += text.count(json.dumps(old)[1:-1])
                    text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
                data = text.encode("utf-8")
            dst.writestr(info, data)
    return Sample(f"{sample.name}_cuda", target, "derived") if changed >= 2 else None


def prepare_testset(work: Path) -> Path:
    """The demo test set (14,500 images in the hidden set's class counts and order)."""
    import demodata

    images, onehot = demodata.load("test")
    testset = work / "testset"
    testset.mkdir(parents=True, exist_ok=True)
    np.save(testset / "test_data.npy", images)
    np.save(testset / "test_label.npy", onehot)
    os.chmod(testset, 0o755)
    return testset


def open_backend(
    mode: str, *, image: str = IMAGE_CPU, gpu: bool = False, pool_size: int = 2
) -> tuple[SandboxBackend | None, str]:
    """The backend for ``mode``, or None and why it is unavailable here."""
    from sandbox.backends import get_backend

    try:
        if mode == "docker-warm":
            from sandbox.warm import WarmDockerBackend

            return WarmDockerBackend(pool_size=pool_size), ""
        if mode == "bwrap":
            from tests.sandbox.conftest import bwrap_unavailable_reason

            if gpu:
                return None, "bubblewrap has no GPU support (sandbox/bwrap_backend.py)"

            reason = bwrap_unavailable_reason()
            if reason:
                return None, reason
        backend = get_backend(mode)
        if mode.startswith("docker"):
            backend.image_digest(image)
        return backend, ""
    except Exception as exc:  # noqa: BLE001 - any failure means: this mode is skipped
        return None, f"{type(exc).__name__}: {exc}"


def bench_limits() -> Limits:
    # The production defaults, CPUs set to the whole (small) machine as a worker would.
    return Limits(wall_seconds=600.0, memory_mb=4096, cpus=float(os.cpu_count() or 2))


# --------------------------------------------------------------------------- runs


def score_once(
    mode: str,
    backend: SandboxBackend,
    sample: Sample,
    testset: Path,
    work: Path,
    *,
    image: str,
    gpu: str | None,
    tag: str,
) -> dict[str, Any]:
    config = ScoreConfig(
        backend=backend,
        image=image,
        work_root=work / "runs",
        limits=bench_limits(),
        # Docker: --gpus device=UUID; the process backend: CUDA_VISIBLE_DEVICES=UUID.
        gpu=gpu,
        python=sys.executable if mode == "process" else "python3",
    )
    started = time.perf_counter()
    outcome = score_zip(sample.zip_path, testset, run_name=f"katakana-bench-{tag}", config=config)
    total = time.perf_counter() - started
    d = outcome.durations
    return {
        "sample": sample.name,
        "mode": mode,
        "backend": outcome.backend,
        "status": outcome.status,
        "error": outcome.error.code if outcome.error else None,
        "accuracy": outcome.accuracy,
        "total": total,
        "sandbox": d.get("sandbox"),
        "setup": d.get("harness_setup"),
        "predict": d.get("harness_predict"),
    }


def quiesce(backends: Iterable[SandboxBackend]) -> None:
    """Wait until every warm pool is full again before a timed run.

    After a warm run the pool starts a replacement container, which imports numpy,
    IPython and torch: seconds of CPU. Whatever run came next used to race that refill;
    on 2 cores it slowed the bwrap run that followed the warm one by 60 % (numpy CNN
    predict 2.1 s against 1.3 s), which read as a cost of bubblewrap. Waiting here makes
    every mode, the warm one included, start on a quiet machine.
    """
    for backend in backends:
        wait_full = getattr(backend, "wait_until_full", None)
        if wait_full is not None:
            wait_full(240.0)


def summarise(values: list[float]) -> dict[str, float | int | None]:
    """Median and p95 (nearest rank: with few runs, p95 is the slowest run)."""
    clean = sorted(v for v in values if v is not None)
    if not clean:
        return {"n": 0, "median": None, "p95": None, "min": None, "max": None}
    rank = max(0, int(np.ceil(0.95 * len(clean))) - 1)
    return {
        "n": len(clean),
        "median": float(np.median(clean)),
        "p95": clean[rank],
        "min": clean[0],
        "max": clean[-1],
    }


def run_sandbox_bench(
    *,
    reps: int,
    modes: tuple[str, ...] = MODES,
    gpu: bool = False,
    before_image: str | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Score every sample ``reps`` times per mode; return raw runs, summary and ratios."""
    work = Path(tempfile.mkdtemp(prefix="katakana-bench-"))
    os.chmod(work, 0o700)
    backends: dict[str, SandboxBackend] = {}
    skipped: dict[str, str] = {}
    try:
        samples = prepare_samples(work, log)
        testset = prepare_testset(work)
        image, gpu_id = IMAGE_CPU, None
        if gpu:
            image, gpu_id, samples = _gpu_setup(samples, work, log)
        for mode in modes:
            backend, reason = open_backend(mode, image=image, gpu=gpu)
            if backend is None:
                skipped[mode] = reason
                log(f"skipping {mode}: {reason}")
            else:
                backends[mode] = backend
        images = dict.fromkeys(backends, image)
        for mode in ("docker", "docker-warm") if before_image else ():
            backend, reason = open_backend(mode, image=before_image or image)
            if backend is None:
                skipped[mode + BEFORE] = reason
            else:
                backends[mode + BEFORE], images[mode + BEFORE] = backend, before_image or image
        runs: list[dict[str, Any]] = []
        for rep in range(-1, reps):  # rep -1: the untimed warm-up (and the pool's first fill)
            for sample in samples:
                for mode, backend in backends.items():
                    if mode.endswith(BEFORE) and sample.name in CURRENT_IMAGE_ONLY:
                        continue
                    tag = f"{sample.name[:8]}-{mode}-{rep + 1}".replace("_", "")
                    quiesce(backends.values())
                    row = score_once(
                        mode,
                        backend,
                        sample,
                        testset,
                        work,
                        image=images[mode],
                        gpu=gpu_id,
                        tag=tag,
                    )
                    row["rep"] = rep
                    if rep >= 0:
                        runs.append(row)
                    log(
                        f"{'warm-up' if rep < 0 else f'rep {rep + 1}'} {sample.name:18} "
                        f"{mode:11} {row['status']:6} total {row['total']:.2f}s "
                        f"sandbox {row['sandbox'] or 0:.2f}s ({row['backend']})"
                    )
        summary = summarise_runs(runs)
        return {
            "kind": "sandbox",
            "reps": reps,
            "image": image,
            "before_image": before_image,
            "gpu": gpu_id,
            "samples": {s.name: {"zip": s.zip_path.name, "source": s.source} for s in samples},
            "skipped": skipped,
            "summary": summary,
            "ratios": ratios(summary),
            "runs": runs,
        }
    finally:
        for backend in backends.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()
        shutil.rmtree(work, ignore_errors=True)


def _gpu_setup(samples: list[Sample], work: Path, log: Log) -> tuple[str, str | None, list[Sample]]:
    from sandbox.gpu import list_gpus

    gpus = list_gpus()
    if not gpus:
        raise SystemExit("--gpu: no NVIDIA GPU visible (nvidia-smi); run it on a GPU host")
    torch_sample = next(s for s in samples if s.name.startswith("pytorch"))
    cuda = gpu_variant(torch_sample, work)
    if cuda is None:
        log("the PyTorch sample's notebook changed: no CUDA variant, CPU samples only")
    return IMAGE_GPU, gpus[0], samples + ([cuda] if cuda else [])


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for row in runs:
        cell = summary.setdefault(row["sample"], {}).setdefault(
            row["mode"], {"values": {k: [] for k in ("total", "sandbox", "setup", "predict")}}
        )
        for key in cell["values"]:
            cell["values"][key].append(row[key])
        cell.setdefault("backends", set()).add(row["backend"])
        cell.setdefault("statuses", set()).add(row["status"])
    for modes in summary.values():
        for cell in modes.values():
            values = cell.pop("values")
            for key, series in values.items():
                cell[key] = summarise(series)
            cell["backends"] = sorted(cell["backends"])
            cell["statuses"] = sorted(cell["statuses"])
    return summary


def ratios(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median sandbox and total time of each mode over the floor's, per sample."""
    out: dict[str, dict[str, Any]] = {}
    for sample, modes in summary.items():
        floor = modes.get(FLOOR)
        if not floor:
            continue
        for mode, cell in modes.items():
            out.setdefault(sample, {})[mode] = {
                key: _ratio(cell[key]["median"], floor[key]["median"])
                for key in ("sandbox", "total")
            }
    return out


def _ratio(value: float | None, floor: float | None) -> float | None:
    return round(value / floor, 3) if value and floor else None
