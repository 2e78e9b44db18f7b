"""What the training-set pass costs: the same zips scored with and without it, side by side.

    python -m bench.training [--runs 5] [--backend docker|bwrap|process] [--out DIR]

Issue 17's budget: running the learner's model on the course's public training set too
(3,000 images beside the 14,500 test images) may add at most 25 % to a run. For each
sample (numpy CNN, legacy numpy MLP; built by ``python -m samples build``) it scores the
zip against the demo test set stored alone and stored with the demo training set,
alternating the two so drift hits both alike, and prints the median seconds of each and
their ratio. Not a timed test: numbers go to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

import demodata
from sandbox.backends import get_backend
from sandbox.base import Limits
from scorer.pipeline import ScoreConfig, score_zip
from scorer.testset import store_testset, store_training_set

SAMPLES = ("numpy_cnn_params", "legacy_numpy_mlp")
DIST = Path(__file__).resolve().parent.parent / "samples" / "dist"


def _store(root: Path, *, with_training: bool) -> Path:
    raw = root / "raw"
    raw.mkdir(exist_ok=True)
    for split in ("train", "test"):
        x, t = demodata.load(split)
        np.save(raw / f"{split}_data.npy", x)
        np.save(raw / f"{split}_label.npy", t)
    dest = root / ("with-training" if with_training else "test-only")
    store_testset(raw / "test_data.npy", raw / "test_label.npy", dest)
    if with_training:
        store_training_set(raw / "train_data.npy", raw / "train_label.npy", dest)
    dest.chmod(0o755)
    for path in dest.iterdir():
        path.chmod(0o644)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", default="docker")
    parser.add_argument("--out", type=Path, help="write training.json and training.md here")
    args = parser.parse_args(argv)
    backend = get_backend(args.backend)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        stores = {False: _store(root, with_training=False), True: _store(root, with_training=True)}
        config = ScoreConfig(
            backend=backend,
            image="katakana-sandbox:cpu",
            work_root=root / "runs",
            limits=Limits(wall_seconds=300, memory_mb=4096),
            python=getattr(backend, "python", "python3"),
        )
        for sample in SAMPLES:
            zip_path = DIST / f"{sample}.zip"
            if not zip_path.is_file():
                print(f"{zip_path} missing: run python -m samples build")
                return 2
            seconds: dict[bool, list[float]] = {False: [], True: []}
            # The harness's own phases: what the notebook's cells took (setup, which
            # includes any use the learner's code makes of the training images it can
            # now see), and the training-set pass itself.
            phases: dict[str, list[float]] = {"setup_alone": [], "setup_both": [], "train": []}
            for _ in range(args.runs):
                for with_training in (False, True):
                    started = time.monotonic()
                    outcome = score_zip(
                        zip_path,
                        stores[with_training],
                        run_name=f"bench-training-{uuid.uuid4().hex[:8]}",
                        config=config,
                    )
                    seconds[with_training].append(time.monotonic() - started)
                    assert outcome.status == "scored", outcome.error
                    assert (outcome.train_accuracy is not None) == with_training
                    durations = outcome.durations or {}
                    setup = float(durations.get("harness_setup", 0.0))
                    phases["setup_both" if with_training else "setup_alone"].append(setup)
                    if with_training:
                        phases["train"].append(float(durations.get("harness_train", 0.0)))
            alone, both = statistics.median(seconds[False]), statistics.median(seconds[True])
            results[sample] = {
                "test_only_s": alone,
                "with_training_s": both,
                "ratio": both / alone,
                "train_pass_s": statistics.median(phases["train"]),
                "setup_alone_s": statistics.median(phases["setup_alone"]),
                "setup_both_s": statistics.median(phases["setup_both"]),
            }
    lines = [
        f"| sample | test set only (s) | with the training set (s) | ratio | of which the "
        f"pass (s) | notebook cells alone / with (s) | ({args.backend}, median of {args.runs}) |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {name} | {r['test_only_s']:.2f} | {r['with_training_s']:.2f} | "
            f"{r['ratio']:.2f}× | {r['train_pass_s']:.2f} "
            f"(+{r['train_pass_s'] / r['test_only_s']:.0%}) | "
            f"{r['setup_alone_s']:.2f} / {r['setup_both_s']:.2f} | |"
            for name, r in results.items()
        ),
    ]
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "training.json").write_text(json.dumps(results, indent=1))
        (args.out / "training.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
