"""Command line for the scoring core: a learner's local check and instructors' offline scoring.

    python -m scorer check my.zip [--data DIR] [--lang ja|en] [--backend process|docker|bwrap]
    python -m scorer score my.zip --testset DIR [--backend docker] [--json]

Both call ``scorer.pipeline.score_zip``, the very function the server's worker calls,
so a zip goes through the same intake, the same entry detection, the same harness and
the same metrics. ``check`` defaults to the process backend (no isolation, needs only
numpy and IPython) and to public data: the learner's ``1_data/train_data.npy`` next to
the zipped folder, ``--data DIR``, or the demo training set inside this repository.

One honest difference: the legacy ``util.py`` insists on exactly 14,500 images. On a
local set of another size, ``check`` runs a copy of the server's ``util.py`` whose size
check expects the local size instead, and says so in its output (see ``harness_for``).

Exit status: 0 scored, 1 the submission failed (the learner's to fix), 2 usage or
infrastructure (bad arguments, unreadable data, the sandbox itself failed).
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.base import InfrastructureError, Limits, SandboxBackend
from scorer.errors import ERROR_CLASS_TEXT, ErrorClass, ScoringError, gettext_noop
from scorer.metrics import CLASS_NAMES
from scorer.pipeline import HARNESS_DIR, ScoreConfig, ScoreOutcome, score_zip
from scorer.testset import DATA_FILE, LABEL_FILE, store_testset
from scorer.translation import LANGUAGES, Translate, fill, translator

EXIT_SCORED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_IMAGE = "katakana-sandbox:cpu"
COURSE_TEST_SIZE = 14500
DEFAULT_THRESHOLD = 0.98
TRAIN_FILES = ("train_data.npy", "train_label.npy")
_EXPECTED_SIZE_LINE = re.compile(r"^EXPECTED_SIZE = 14500$", re.MULTILINE)


class UsageError(Exception):
    """Bad arguments or unusable local data: exit status 2, message already translated."""


@dataclass(frozen=True)
class LocalData:
    testset_dir: Path
    source: str
    n: int
    is_training_data: bool


# --------------------------------------------------------------------------- entry


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # ``katakana-check my.zip`` is ``check my.zip``.
    if args_list and args_list[0] not in ("check", "score", "-h", "--help"):
        args_list.insert(0, "check")
    args = build_parser().parse_args(args_list)
    _ = translator(args.lang)
    try:
        code: int = args.run(args, _)
        return code
    except UsageError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    except InfrastructureError as error:
        print(fill(_, "The sandbox itself failed: %(error)s", {"error": error}), file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scorer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="check a submission zip locally, as the server would")
    check.add_argument("zip", type=Path)
    check.add_argument(
        "--data",
        type=Path,
        help="folder with test_data.npy + test_label.npy (or train_data.npy + train_label.npy)",
    )
    check.add_argument("--backend", choices=("process", "docker", "bwrap"), default="process")
    check.set_defaults(run=command_check, wall=600.0)

    score = commands.add_parser("score", help="score a zip on a test set (instructors)")
    score.add_argument("zip", type=Path)
    score.add_argument("--testset", type=Path, required=True, help="folder with test_*.npy")
    score.add_argument("--backend", choices=("docker", "bwrap", "process"), default="docker")
    score.add_argument("--no-legacy", action="store_true", help="refuse the legacy contract")
    score.add_argument("--wall", type=float, default=600.0, help="time limit in seconds")
    score.add_argument("--cpus", type=float, default=2.0)
    score.set_defaults(run=command_score)

    for sub in (check, score):
        sub.add_argument("--lang", choices=LANGUAGES, default=None, help="default: ja")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        sub.add_argument("--image", default=DEFAULT_IMAGE, help="sandbox image (docker, bwrap)")
        sub.add_argument("--memory", type=int, default=4096, help="memory limit in MB")
        sub.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    return parser


def command_check(args: argparse.Namespace, _: Translate) -> int:
    zip_path = _existing_file(args.zip, _)
    with tempfile.TemporaryDirectory(prefix="katakana-check-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # docker and bwrap run the harness as an unprivileged user
        data = prepare_local_data(zip_path, args.data, root / "data", _)
        config = _config(args, root, harness_for(data.n, root / "harness"))
        outcome = score_zip(zip_path, data.testset_dir, run_name=_run_name(), config=config)
    if outcome.error is not None and outcome.error.code == "legacy_size_mismatch":
        outcome.error.params["expected"] = data.n
    notes = local_notes(outcome, data, args.backend, _)
    return report(outcome, args, _, data=data, notes=notes)


def command_score(args: argparse.Namespace, _: Translate) -> int:
    zip_path = _existing_file(args.zip, _)
    with tempfile.TemporaryDirectory(prefix="katakana-score-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        data = _store(args.testset / DATA_FILE, args.testset / LABEL_FILE, root / "data", _)
        testset = LocalData(data[0], str(args.testset), data[1], is_training_data=False)
        config = _config(args, root, HARNESS_DIR)
        outcome = score_zip(zip_path, testset.testset_dir, run_name=_run_name(), config=config)
    return report(outcome, args, _, data=testset, notes=[])


# --------------------------------------------------------------------------- set-up


def _existing_file(path: Path, _: Translate) -> Path:
    if not path.is_file():
        raise UsageError(fill(_, "No such file: %(path)s", {"path": path}))
    return path.resolve()


def _run_name() -> str:
    return f"katakana-cli-{secrets.token_hex(6)}"


def _config(args: argparse.Namespace, root: Path, harness_dir: Path) -> ScoreConfig:
    backend = make_backend(args.backend)
    limits = Limits(wall_seconds=args.wall, memory_mb=args.memory, cpus=getattr(args, "cpus", 2.0))
    return ScoreConfig(
        backend=backend,
        image=args.image,
        work_root=root / "runs",
        limits=limits,
        legacy_allowed=not getattr(args, "no_legacy", False),
        harness_dir=harness_dir,
        python=getattr(backend, "python", "python3"),
    )


def make_backend(name: str) -> SandboxBackend:
    # Lazy: a learner's machine with only numpy never imports the docker SDK.
    from sandbox.backends import get_backend

    return get_backend(name)


def find_training_data(zip_path: Path, cwd: Path) -> Path | None:
    """The course's ``1_data`` folder next to the zipped folder, if it holds the training set.

    Learners keep ``4_kadai/1_data`` beside ``4_kadai/2_notebook`` and zip the latter,
    so the zip usually sits in ``4_kadai`` or in ``2_notebook``.
    """
    candidates = [
        zip_path.parent / "1_data",
        zip_path.parent.parent / "1_data",
        cwd / "1_data",
        cwd.parent / "1_data",
    ]
    for folder in dict.fromkeys(c.resolve() for c in candidates):
        if all((folder / name).is_file() for name in TRAIN_FILES):
            return folder
    return None


def prepare_local_data(
    zip_path: Path, data_dir: Path | None, dest: Path, _: Translate
) -> LocalData:
    """Stage the data the check scores against, in the server's canonical test-set form."""
    if data_dir is not None:
        for data_name, label_name in ((DATA_FILE, LABEL_FILE), TRAIN_FILES):
            if (data_dir / data_name).is_file() and (data_dir / label_name).is_file():
                stored, n = _store(data_dir / data_name, data_dir / label_name, dest, _)
                source = str(data_dir / data_name)
                return LocalData(stored, source, n, is_training_data=data_name != DATA_FILE)
        raise UsageError(
            fill(
                _,
                "%(folder)s holds neither test_data.npy and test_label.npy nor "
                "train_data.npy and train_label.npy.",
                {"folder": data_dir},
            )
        )
    found = find_training_data(zip_path, Path.cwd())
    if found is not None:
        stored, n = _store(found / TRAIN_FILES[0], found / TRAIN_FILES[1], dest, _)
        return LocalData(stored, str(found / TRAIN_FILES[0]), n, is_training_data=True)
    try:
        import demodata
    except ImportError:
        raise UsageError(
            _(
                "No data to check against: put the course's 1_data folder (train_data.npy "
                "and train_label.npy) next to the zipped folder, or pass --data FOLDER."
            )
        ) from None
    raw = dest.parent / "demo-train"
    raw.mkdir()
    images, labels = demodata.load("train")
    np.save(raw / DATA_FILE, images)
    np.save(raw / LABEL_FILE, labels)
    stored, n = _store(raw / DATA_FILE, raw / LABEL_FILE, dest, _)
    return LocalData(stored, _("the demo training set"), n, is_training_data=True)


def _store(data: Path, labels: Path, dest: Path, _: Translate) -> tuple[Path, int]:
    """Validate and write the canonical float64 / int32 one-hot files the sandbox reads."""
    for path in (data, labels):
        if not path.is_file():
            raise UsageError(fill(_, "No such file: %(path)s", {"path": path}))
    try:
        info = store_testset(data, labels, dest)
    except ScoringError as error:
        raise UsageError(error.render(_)) from error
    dest.chmod(0o755)
    return dest, info.n


def harness_for(n: int, dest: Path) -> Path:
    """The harness folder to mount: the server's own, or for a local set that is not
    14,500 images a copy whose legacy ``util.py`` expects ``n`` images.

    Only the size constant changes; batching, the decoy and the printed lines are the
    server's. The verified contract does not use util.py, so it is unaffected.
    """
    if n == COURSE_TEST_SIZE:
        return HARNESS_DIR
    shutil.copytree(HARNESS_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    util = dest / "legacy_util.py"
    source, count = _EXPECTED_SIZE_LINE.subn(f"EXPECTED_SIZE = {n}", util.read_text("utf-8"))
    if count != 1:
        raise InfrastructureError("legacy_util.py has no 'EXPECTED_SIZE = 14500' line to adapt")
    util.write_text(source, encoding="utf-8")
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


# --------------------------------------------------------------------------- output


def local_notes(outcome: ScoreOutcome, data: LocalData, backend: str, _: Translate) -> list[str]:
    notes = []
    if outcome.contract == "legacy" and data.n != COURSE_TEST_SIZE:
        notes.append(
            fill(
                _,
                "Legacy contract: the server's util.py checks for exactly 14,500 images (the "
                "hidden test set). The local data has %(n)s images, so this check ran a copy "
                "of the server's util.py whose size check expects %(n)s instead; everything "
                "else is the same as on the server.",
                {"n": data.n},
            )
        )
    if data.is_training_data and outcome.status == "scored":
        notes.append(
            _(
                "These numbers are on training data, which your model has seen: expect a "
                "lower accuracy on the hidden test set."
            )
        )
    if backend == "process":
        notes.append(
            _(
                "The process backend runs your code on this computer without a sandbox: only "
                "the time limit is enforced, not the memory limit."
            )
        )
    return notes


def outcome_to_dict(outcome: ScoreOutcome, _: Translate) -> dict[str, Any]:
    """Plain JSON-serialisable data: what the server stores, plus the rendered texts."""
    error = None
    if outcome.error is not None:
        title, advice = ERROR_CLASS_TEXT[outcome.error.error_class]
        error = {
            "error_class": outcome.error.error_class.value,
            "code": outcome.error.code,
            "params": outcome.error.params,
            "title": _(title),
            "message": outcome.error.render(_),
            "advice": _(advice),
            "detail": outcome.error.detail,
            "charged_to_learner": outcome.error.error_class.charged_to_learner,
        }
    return {
        "status": outcome.status,
        "accuracy": outcome.accuracy,
        "loss": outcome.loss,
        "metrics": outcome.metrics.to_dict() if outcome.metrics else None,
        "contract": outcome.contract,
        "entry": outcome.entry,
        "self_reported": outcome.self_reported,
        "untrusted": outcome.untrusted,
        "error": error,
        "backend": outcome.backend,
        "durations": outcome.durations,
        "notes": outcome.notes,
    }


def report(
    outcome: ScoreOutcome,
    args: argparse.Namespace,
    _: Translate,
    *,
    data: LocalData,
    notes: list[str],
) -> int:
    if args.json:
        payload = outcome_to_dict(outcome, _)
        payload.update(data={"source": data.source, "n": data.n}, local_notes=notes)
        print(json.dumps(payload, ensure_ascii=False, indent=1, default=str))
    else:
        print(render_text(outcome, _, data=data, threshold=args.threshold, notes=notes))
    if outcome.status == "scored":
        return EXIT_SCORED
    infrastructure = outcome.error and outcome.error.error_class is ErrorClass.INFRASTRUCTURE
    return EXIT_USAGE if infrastructure else EXIT_FAILED


def render_text(
    outcome: ScoreOutcome, _: Translate, *, data: LocalData, threshold: float, notes: list[str]
) -> str:
    lines = [fill(_, "Data: %(source)s (%(n)s images)", {"source": data.source, "n": data.n})]
    if outcome.entry:
        lines.append(
            fill(
                _,
                "Entry point: %(entry)s (%(contract)s contract)",
                {"entry": outcome.entry, "contract": outcome.contract},
            )
        )
    if outcome.status == "scored":
        lines += _render_score(outcome, _, threshold)
    elif outcome.error is not None:
        lines += _render_error(outcome.error, _)
    for note in notes:
        lines.append(fill(_, "Note: %(note)s", {"note": note}))
    return "\n".join(lines)


def _render_score(outcome: ScoreOutcome, _: Translate, threshold: float) -> list[str]:
    lines = [_("Verdict: scored")]
    assert outcome.accuracy is not None
    passed = outcome.accuracy >= threshold
    verdict = "Passed (threshold %(t)s)" if passed else "Below the threshold (%(t)s)"
    lines.append(fill(_, verdict, {"t": threshold}))
    accuracy_label, loss_label = _("accuracy"), _("loss")
    lines.append(f"  {accuracy_label}: {outcome.accuracy!r}")
    if outcome.loss is not None:
        lines.append(f"  {loss_label}: {outcome.loss!r}")
    if outcome.self_reported:
        lines.append(
            _(
                "This score was computed by your own code (legacy contract) and is marked as "
                "self-reported."
            )
        )
    if outcome.untrusted:
        lines.append(
            _(
                "A check with shuffled labels did not behave as an honest computation must; "
                "the instructors will review this score."
            )
        )
    metrics = outcome.metrics
    if metrics is not None:
        balanced_label = _("balanced accuracy")
        lines.append(f"  {balanced_label}: {metrics.balanced_accuracy!r}")
        lines.append(_("Accuracy per class"))
        class_label, images_label, correct_label = _("class"), _("images"), _("correct")
        lines.append(f"  {class_label:<6}{images_label:>8}{correct_label:>9}{accuracy_label:>10}")
        for index, row in enumerate(metrics.confusion):
            total, correct = sum(row), row[index]
            share = metrics.per_class_accuracy[index]
            lines.append(f"  {index:>2} {CLASS_NAMES[index]} {total:>8}{correct:>9}{share:>10.4f}")
    return lines


def _render_error(error: ScoringError, _: Translate) -> list[str]:
    title, advice = ERROR_CLASS_TEXT[error.error_class]
    lines = [
        fill(_, "Verdict: %(error_class)s", {"error_class": error.error_class.value}),
        _(title),
        "  " + error.render(_),
        _("What to do") + ": " + _(advice),
    ]
    if error.detail:
        lines.append(_("Details:"))
        lines += ["  " + line for line in error.detail.rstrip().splitlines()[-40:]]
    return lines


# Msgids this module builds from parts (so ``makemessages`` still collects them).
_MSGIDS = (
    gettext_noop("Passed (threshold %(t)s)"),
    gettext_noop("Below the threshold (%(t)s)"),
)
