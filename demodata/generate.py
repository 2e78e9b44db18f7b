"""Regenerate the demo data set from fonts: ``python -m demodata generate``.

Every sample draws its randomness from its own seed ``(seed, split, class, k)``, so the
result does not depend on the order or the number of worker processes. Train rows follow
the course's own row order (two passes of class blocks, see ``LEGACY_TRAIN_CLASS_ORDER``);
test rows are ordered by class, as in the course's test set.

Bit-for-bit reproduction needs the same FreeType, Pillow and font package versions; the
committed ``.npz`` and the sha256 values in the JSON are what the rest of the project uses.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from demodata.augment import SIDE, draw_sample
from demodata.fonts import TEST_FAMILIES, Writer, missing_fonts, writers_for
from demodata.store import CLASSES, N_CLASSES, SPLITS, npy_bytes, to_course_format

DEFAULT_SEED = 20240615
TRAIN_PER_CLASS = (200,) * N_CLASSES
TEST_PER_CLASS = (1300,) * 5 + (800,) * 10
# The course's train_label.npy lists classes in this block order, twice: 34 rows per class
# first (rows 0-509), then the other 166 (rows 510-2999). Row 0 is セ.
LEGACY_TRAIN_CLASS_ORDER = (13, 8, 2, 1, 0, 4, 14, 10, 12, 11, 7, 6, 5, 9, 3)
LEGACY_TRAIN_FIRST_PASS = 34

_SPLIT_CODE = {"train": 0, "test": 1}
_ROLE_WRITERS, _ROLE_SAMPLE = 0, 1


def per_class_counts(split: str) -> tuple[int, ...]:
    return TRAIN_PER_CLASS if split == "train" else TEST_PER_CLASS


def assign_writers(writers: tuple[Writer, ...], n: int, rng: np.random.Generator) -> list[Writer]:
    """``n`` writers, balanced by family first, then by font within a family, in random order.

    Balancing by family keeps a family with many weights (YOzFont) from dominating.
    """
    families: dict[str, list[Writer]] = {}
    for writer in writers:
        families.setdefault(writer.family, []).append(writer)
    groups = list(families.values())
    chosen = []
    for i in range(n):
        group = groups[i % len(groups)]
        chosen.append(group[(i // len(groups)) % len(group)])
    order = rng.permutation(n)
    return [chosen[i] for i in order]


def _class_block(args: tuple[str, int, int, int]) -> np.ndarray:
    """All samples of one class in one split, uint8 (n, 28, 28)."""
    split, class_id, n, seed = args
    code = _SPLIT_CODE[split]
    writer_rng = np.random.default_rng([seed, code, class_id, _ROLE_WRITERS, 0])
    writers = assign_writers(writers_for(split), n, writer_rng)
    images = np.empty((n, SIDE, SIDE), dtype=np.uint8)
    for k, writer in enumerate(writers):
        rng = np.random.default_rng([seed, code, class_id, _ROLE_SAMPLE, k])
        images[k] = draw_sample(writer, CLASSES[class_id], rng)
    return images


def row_order(split: str) -> list[tuple[int, slice]]:
    """(class id, slice of that class's samples) in the order rows appear in the file."""
    counts = per_class_counts(split)
    if split == "test":
        return [(c, slice(0, counts[c])) for c in range(N_CLASSES)]
    first = [(c, slice(0, LEGACY_TRAIN_FIRST_PASS)) for c in LEGACY_TRAIN_CLASS_ORDER]
    second = [(c, slice(LEGACY_TRAIN_FIRST_PASS, counts[c])) for c in LEGACY_TRAIN_CLASS_ORDER]
    return first + second


def generate_split(
    split: str, seed: int = DEFAULT_SEED, jobs: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one split: uint8 images (N, 28, 28) and uint8 class ids (N,), in file order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    counts = per_class_counts(split)
    tasks = [(split, c, counts[c], seed) for c in range(N_CLASSES)]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            blocks = list(pool.map(_class_block, tasks))
    else:
        blocks = [_class_block(task) for task in tasks]
    order = row_order(split)
    images = np.concatenate([blocks[c][rows] for c, rows in order])
    classes = np.concatenate(
        [np.full(rows.stop - rows.start, c, dtype=np.uint8) for c, rows in order]
    )
    return images, classes


def _font_record(writer: Writer) -> dict[str, Any]:
    return {
        "name": writer.name,
        "family": writer.family,
        "file": Path(writer.path).name,
        "package": writer.package,
    }


def build_metadata(
    seed: int, arrays: dict[str, np.ndarray], npz_sha256: str, npz_name: str
) -> dict[str, Any]:
    """The JSON record kept next to the ``.npz``."""
    materialised = {}
    for split in SPLITS:
        data, labels = to_course_format(arrays[f"{split}_images"], arrays[f"{split}_classes"])
        materialised[f"{split}_data.npy"] = hashlib.sha256(npy_bytes(data)).hexdigest()
        materialised[f"{split}_label.npy"] = hashlib.sha256(npy_bytes(labels)).hexdigest()
    splits = {}
    for split in SPLITS:
        splits[split] = {
            "count": int(len(arrays[f"{split}_classes"])),
            "per_class": list(per_class_counts(split)),
            "families": sorted({w.family for w in writers_for(split)}),
            "fonts": [_font_record(w) for w in writers_for(split)],
        }
    splits["train"]["row_order"] = (
        f"two passes of class blocks in order {list(LEGACY_TRAIN_CLASS_ORDER)}: "
        f"{LEGACY_TRAIN_FIRST_PASS} rows per class, then the rest (as the course's train set)"
    )
    splits["test"]["row_order"] = "by class id, 0 to 14 (as the course's test set)"
    return {
        "format": 1,
        "description": "Synthetic stand-in for the course's katakana data: fonts + augmentation",
        "seed": seed,
        "classes": list(CLASSES),
        "test_families": sorted(TEST_FAMILIES),
        "npz": npz_name,
        "npz_sha256": npz_sha256,
        "splits": splits,
        "materialised_sha256": materialised,
    }


def generate(out_dir: Path, seed: int = DEFAULT_SEED, jobs: int = 1) -> tuple[Path, Path]:
    """Draw both splits and write ``katakana_demo.npz`` + ``katakana_demo.json`` in ``out_dir``."""
    missing = missing_fonts()
    if missing:
        packages = sorted({w.package for w in missing})
        raise FileNotFoundError(
            "fonts needed to regenerate are missing; apt-get install " + " ".join(packages)
        )
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        images, classes = generate_split(split, seed=seed, jobs=jobs)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_classes"] = classes
    out_dir.mkdir(parents=True, exist_ok=True)
    npz_path = out_dir / "katakana_demo.npz"
    # Explicit keys (no pickle); numpy writes fixed zip dates, so equal arrays give equal bytes.
    np.savez_compressed(
        npz_path,
        train_images=arrays["train_images"],
        train_classes=arrays["train_classes"],
        test_images=arrays["test_images"],
        test_classes=arrays["test_classes"],
    )
    npz_sha = hashlib.sha256(npz_path.read_bytes()).hexdigest()
    meta = build_metadata(seed, arrays, npz_sha, npz_path.name)
    meta_path = out_dir / "katakana_demo.json"
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return npz_path, meta_path
