"""How a zip is scored: intake → entry detection → sandbox run → safe read → metrics.

``score_zip`` is the one function the server's Celery task and the CLI call. It takes
plain data (paths, a backend, limits) and returns a ``ScoreOutcome``; it raises only
``sandbox.base.InfrastructureError`` (the caller retries elsewhere, the learner is not
charged). Labels are loaded here, on the host. In both contracts the sandbox gets none:
a verified run writes its predictions, a legacy run records, through the server's
``util.py``, the class its code compared each label with (``docs/legacy-contract.md``).
Only a course that allows labelled legacy runs, and only for a zip whose use of the
labels could not be followed, reruns it with the labels; that score is self-reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sandbox.base import InfrastructureError, Limits, Mount, RunResult, RunSpec, SandboxBackend
from scorer import taint
from scorer.archive import ArchiveLimits, extract_submission
from scorer.entry import EntryPoint, detect_entry
from scorer.errors import ErrorClass, ScoringError, gettext_noop
from scorer.frameworks import PRELOAD_ENV, frameworks_in_folder, preload_modules
from scorer.legacy import (
    UNTRACED_CODE,
    judge_decoy,
    parse_legacy_stdout,
    read_decoy,
    score_recorded,
)
from scorer.metrics import Metrics, compute_metrics, confidence, mistakes_by_confusion
from scorer.predictions import (
    TRAIN_PREDICTIONS_FILE,
    read_legacy_train_classes,
    read_predictions,
    read_result_json,
    result_error,
)
from scorer.taint import Provenance
from scorer.testset import TRAIN_DATA_FILE, TRAIN_LABEL_FILE

HARNESS_DIR = Path(__file__).resolve().parent.parent / "sandbox" / "runner"
SANDBOX_SUBMISSION = "/work/submission"
SANDBOX_DATA = "/work/1_data/test_data.npy"
SANDBOX_LABELS = "/work/1_data/test_label.npy"
SANDBOX_TRAIN = "/work/1_data/train_data.npy"
SANDBOX_TRAIN_LABELS = "/work/1_data/train_label.npy"
LOG_EXCERPT_BYTES = 8 * 1024

Status = Literal["scored", "failed"]


@dataclass(frozen=True)
class ScoreConfig:
    backend: SandboxBackend
    image: str
    work_root: Path
    limits: Limits = field(default_factory=Limits)
    archive_limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    batch_size: int = 500
    legacy_allowed: bool = True
    # A legacy zip whose use of test_label the stand-in cannot follow is, by default, a
    # not-charged refusal; a course may instead allow a rerun with the labels mounted,
    # scored as self-reported (the labels then reach learner code).
    legacy_labelled_allowed: bool = False
    gpu: str | None = None
    harness_dir: Path = HARNESS_DIR
    # The process backend runs the harness with the host interpreter, not the image's.
    python: str = "python3"
    keep_workdir: bool = False
    # Told "running" before the sandbox starts and "scoring" once it is gone, for live status.
    on_phase: Callable[[str], None] | None = None


@dataclass
class ScoreOutcome:
    status: Status
    error: ScoringError | None = None
    metrics: Metrics | None = None
    accuracy: float | None = None
    loss: float | None = None
    contract: str = ""
    entry: str = ""
    self_reported: bool = False
    untrusted: bool = False
    log_excerpt: str = ""
    durations: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    image_digest: str = ""
    notes: list[str] = field(default_factory=list)
    # The same model on the course's public training set (when the test set has one):
    # the learner's train-vs-test comparison. None when there is none or it failed.
    train_accuracy: float | None = None
    # Its mistakes there, grouped by confusion (``scorer.metrics.mistakes_by_confusion``):
    # indices into the public training set, for the learner's gallery.
    train_mistakes: list[dict[str, Any]] = field(default_factory=list)
    # The answer per hidden test image (scored contracts only) and the SHA-256 of each
    # model-sized file in the zip: the evidence for instructors' copy detection
    # (scorer/similarity.py). Answers leave only to the host's own database.
    predicted_classes: np.ndarray | None = None
    model_files: dict[str, str] = field(default_factory=dict)


def score_zip(
    zip_path: Path, testset_dir: Path, *, run_name: str, config: ScoreConfig
) -> ScoreOutcome:
    """Score one submission archive against the test set stored in ``testset_dir``."""
    config.work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A fresh, unpredictable directory per run (never a reused or guessable name).
    workdir = Path(tempfile.mkdtemp(prefix=f"{run_name}-", dir=config.work_root))
    durations: dict[str, float] = {}
    try:
        started = time.monotonic()
        try:
            extracted = extract_submission(zip_path, workdir / "submission", config.archive_limits)
            entry = detect_entry(extracted.root)
            _check_contract_allowed(entry, config)
        except ScoringError as error:
            return ScoreOutcome(status="failed", error=error, durations=durations)
        durations["intake"] = time.monotonic() - started
        notes = [f"entry: {entry.path} ({entry.contract}, {entry.reason})"]
        if extracted.stripped:
            notes.append("ignored: " + ", ".join(sorted(extracted.stripped)[:10]))
        provenance = Provenance(extracted.root, entry.path)
        model_files = model_file_hashes(extracted.root)
        outcome = _run_and_judge(entry, provenance, testset_dir, workdir, run_name, config)
        if (
            outcome.error is not None
            and outcome.error.code == UNTRACED_CODE
            and config.legacy_labelled_allowed
        ):
            notes.append("labels not followed: rerun with the labels (self-reported)")
            outcome = _run_and_judge(
                entry, provenance, testset_dir, workdir, f"{run_name}-l", config, labelled=True
            )
        outcome.durations = {**durations, **outcome.durations}
        outcome.notes = notes + outcome.notes
        outcome.model_files = model_files
        return outcome
    finally:
        if not config.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_and_judge(
    entry: EntryPoint,
    provenance: Provenance,
    testset_dir: Path,
    workdir: Path,
    run_name: str,
    config: ScoreConfig,
    *,
    labelled: bool = False,
) -> ScoreOutcome:
    out_dir = workdir / ("out-labelled" if labelled else "out")
    out_dir.mkdir()
    spec = _build_spec(entry, provenance.root, testset_dir, out_dir, run_name, config, labelled)
    _phase(config, "running")
    run_started = time.monotonic()
    result = config.backend.run(spec)
    sandbox_seconds = time.monotonic() - run_started
    _phase(config, "scoring")
    outcome = _judge(result, entry, provenance, out_dir, testset_dir, config, labelled)
    outcome.durations["sandbox"] = sandbox_seconds
    return outcome


MODEL_FILE_MIN_BYTES = 1024
SOURCE_SUFFIXES = (".py", ".ipynb", ".txt", ".md", ".csv", ".json", ".cfg", ".ini")


def model_file_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file in the zip that is not code or text and not tiny: the saved
    models, which two learners should not share byte for byte."""
    hashes = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix.lower() in SOURCE_SUFFIXES:
            continue
        if path.stat().st_size < MODEL_FILE_MIN_BYTES:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        hashes[path.relative_to(root).as_posix()[:300]] = digest.hexdigest()
        if len(hashes) >= 50:
            break
    return hashes


def _phase(config: ScoreConfig, phase: str) -> None:
    if config.on_phase is not None:
        config.on_phase(phase)


def legacy_disabled_error(entry_path: str) -> ScoringError:
    return ScoringError(
        ErrorClass.NO_ENTRY_POINT,
        "legacy_disabled",
        gettext_noop(
            "%(entry)s uses the legacy contract (func_predict and main), which this "
            "course does not accept. Define predict(test_data) instead."
        ),
        {"entry": entry_path},
    )


def _check_contract_allowed(entry: EntryPoint, config: ScoreConfig) -> None:
    if entry.contract == "legacy" and not config.legacy_allowed:
        raise legacy_disabled_error(entry.path)


def _build_spec(
    entry: EntryPoint,
    root: Path,
    testset_dir: Path,
    out_dir: Path,
    run_name: str,
    config: ScoreConfig,
    labelled: bool = False,
) -> RunSpec:
    mounts = [
        Mount(root, SANDBOX_SUBMISSION),
        Mount(testset_dir / "test_data.npy", SANDBOX_DATA),
        Mount(config.harness_dir, "/harness"),
    ]
    if entry.contract == "legacy":
        _stage_legacy_util(root, config.harness_dir)
    if labelled:
        # Only a course's opt-in labelled legacy run: the score is self-reported.
        mounts.append(Mount(testset_dir / "test_label.npy", SANDBOX_LABELS))
    train = testset_dir / TRAIN_DATA_FILE
    if train.is_file():
        # The course's public training set, where learners' own notebooks look for it
        # (../1_data/train_data.npy and train_label.npy: the kit's self-check loads both).
        # Public: none of it is hidden. The score on it is still computed on the host.
        mounts.append(Mount(train, SANDBOX_TRAIN))
        if (testset_dir / TRAIN_LABEL_FILE).is_file():
            mounts.append(Mount(testset_dir / TRAIN_LABEL_FILE, SANDBOX_TRAIN_LABELS))
    # Making these paths usable by the sandbox user (uid 65534) is each isolating
    # backend's job (sandbox.hostside.prepare_host_paths), not the pipeline's.
    command = [
        config.python,
        "/harness/harness.py",
        "--contract",
        entry.contract,
        "--entry",
        entry.path,
        "--batch-size",
        str(config.batch_size),
        "--data",
        SANDBOX_DATA,
        *(["--train-data", SANDBOX_TRAIN] if train.is_file() else []),
        "--out",
        "/out",
    ]
    threads = str(max(1, int(config.limits.cpus)))
    env = {
        "HOME": "/tmp",
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "KATAKANA_OUT": "/out",
        # Threads count against the pids limit; keep BLAS pools to the CPU quota.
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": str(min(int(threads), 2)),
        # What a warm container of this run's profile imports before the job: only the
        # frameworks the zip imports, so numpy runs' containers stay light (sandbox/warm.py).
        PRELOAD_ENV: ",".join(preload_modules(frameworks_in_folder(root))),
    }
    return RunSpec(
        name=run_name,
        image=config.image,
        command=command,
        workdir=SANDBOX_SUBMISSION,
        mounts=mounts,
        out_dir=out_dir,
        limits=config.limits,
        env=env,
        labels={"katakana.contract": entry.contract},
        gpu=config.gpu,
    )


def _stage_legacy_util(root: Path, harness_dir: Path) -> None:
    # The course's server overwrote util.py; unlink first so nothing is written through a link.
    target = root / "util.py"
    if target.exists() or target.is_symlink():
        target.unlink()
    shutil.copyfile(harness_dir / "legacy_util.py", target)


def _judge(
    result: RunResult,
    entry: EntryPoint,
    provenance: Provenance,
    out_dir: Path,
    testset_dir: Path,
    config: ScoreConfig,
    labelled: bool,
) -> ScoreOutcome:
    outcome = ScoreOutcome(
        status="failed",
        contract=entry.contract,
        entry=entry.path,
        backend=result.backend,
        image_digest=result.image_digest,
        log_excerpt=_log_excerpt(result),
        self_reported=labelled,
    )
    try:
        if result.timed_out:
            raise ScoringError(
                ErrorClass.TIME_LIMIT,
                "time_limit",
                gettext_noop("Your code did not finish within %(seconds)s seconds."),
                {"seconds": int(config.limits.wall_seconds)},
            )
        if result.oom_killed:
            raise ScoringError(
                ErrorClass.MEMORY_LIMIT,
                "memory_limit",
                gettext_noop("Your code used more than %(megabytes)s MB of memory."),
                {"megabytes": config.limits.memory_mb},
            )
        if result.output_exceeded:
            raise ScoringError(
                ErrorClass.OUTPUT_TOO_LARGE,
                "output_too_large",
                gettext_noop(
                    "Your code wrote more than %(megabytes)s MB or %(files)s files "
                    "to the output folder."
                ),
                {
                    "megabytes": config.limits.out_max_bytes >> 20,
                    "files": config.limits.out_max_files,
                },
            )
        report = read_result_json(out_dir)
        _raise_reported_error(report, result, provenance)
        if entry.contract == "verified":
            _score_verified(outcome, out_dir, testset_dir)
        elif labelled:
            _score_legacy_labelled(outcome, result, out_dir)
        else:
            _score_legacy_recorded(outcome, result, out_dir, testset_dir)
        if isinstance(report.get("seconds"), dict):
            outcome.durations.update(
                {f"harness_{k}": float(v) for k, v in report["seconds"].items()}
            )
        _score_training_set(outcome, entry, out_dir, testset_dir)
        outcome.status = "scored"
    except ScoringError as error:
        outcome.error = error
    return outcome


def _raise_reported_error(
    report: dict[str, Any], result: RunResult, provenance: Provenance
) -> None:
    """Turn the harness's (untrusted) report, or a silent crash, into a learner error."""
    if report.get("error_class"):
        error = result_error(report, provenance)
        if error is not None:
            # Learner code controls the harness process: it can never claim an
            # infrastructure failure to get its quota slot back.
            if error.error_class is ErrorClass.INFRASTRUCTURE:
                error.error_class = ErrorClass.LEARNER_EXCEPTION
            raise error
    if result.exit_code not in (0, None) and not report.get("ok"):
        raise ScoringError(
            ErrorClass.LEARNER_EXCEPTION,
            "crashed",
            gettext_noop("Your code stopped with exit status %(status)s before finishing."),
            {"status": taint.exit_status(result.exit_code) or "?"},
            detail=_tail(result.stderr.decode("utf-8", "replace"), 4000),
        )


def _score_verified(outcome: ScoreOutcome, out_dir: Path, testset_dir: Path) -> None:
    labels = np.load(testset_dir / "test_label.npy", allow_pickle=False)
    predictions = read_predictions(out_dir, len(labels))
    outcome.predicted_classes = (
        predictions if predictions.ndim == 1 else np.argmax(predictions, axis=1)
    )
    metrics = _shown(compute_metrics(predictions, labels))
    outcome.metrics = metrics
    outcome.accuracy = metrics.accuracy
    outcome.loss = metrics.loss


def _score_legacy_recorded(
    outcome: ScoreOutcome, result: RunResult, out_dir: Path, testset_dir: Path
) -> None:
    """Score what the label stand-in recorded, against labels that never left the host."""
    labels = np.load(testset_dir / "test_label.npy", allow_pickle=False)
    stdout = result.stdout.decode("utf-8", "replace")
    metrics, notes, classes = score_recorded(out_dir, labels, stdout)
    outcome.predicted_classes = classes
    metrics = _shown(metrics)
    outcome.metrics = metrics
    outcome.accuracy = metrics.accuracy
    outcome.loss = metrics.loss
    outcome.notes.extend(notes)


def _score_training_set(
    outcome: ScoreOutcome, entry: EntryPoint, out_dir: Path, testset_dir: Path
) -> None:
    """Accuracy and mistakes on the public training set; nothing (with a note) when the
    course has none or the run's answers there cannot be read."""
    label_path = testset_dir / TRAIN_LABEL_FILE
    if not label_path.is_file():
        return
    labels = np.load(label_path, allow_pickle=False)
    confidences = None
    try:
        if entry.contract == "verified":
            predicted = read_predictions(out_dir, len(labels), name=TRAIN_PREDICTIONS_FILE)
            classes = predicted if predicted.ndim == 1 else np.argmax(predicted, axis=1)
            if predicted.ndim == 2:
                confidences = confidence(predicted)
        else:
            classes = read_legacy_train_classes(out_dir, len(labels))
    except ScoringError as error:  # a bad file here never costs the test-set score
        outcome.notes.append(f"training set: {error.code}")
        return
    if classes is None:
        outcome.notes.append("training set: not every image was followed")
        return
    true = np.argmax(labels, axis=1)
    outcome.train_accuracy = float(np.mean(classes == true))
    outcome.train_mistakes = mistakes_by_confusion(classes, true, confidences)


def _shown(metrics: Metrics) -> Metrics:
    # The loss is a function of scores the learner's code chose: a 64-bit float would
    # carry 64 bits out, so it is kept as precisely as it is shown (scorer/taint.py).
    return dataclasses.replace(metrics, loss=taint.rounded(metrics.loss))


def _score_legacy_labelled(outcome: ScoreOutcome, result: RunResult, out_dir: Path) -> None:
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    try:
        loss, accuracy = parse_legacy_stdout(stdout, stderr=stderr)
    except ScoringError as error:
        if result.stdout_truncated:
            raise ScoringError(
                ErrorClass.OUTPUT_TOO_LARGE,
                "stdout_too_large",
                gettext_noop(
                    "Your code printed more than %(megabytes)s MB, so the Test lines were lost."
                ),
                {"megabytes": 1},
            ) from error
        raise
    # Numbers the learner's code chose are kept only as precisely as they are shown.
    outcome.accuracy, outcome.loss = taint.rounded(accuracy), taint.rounded(loss)
    outcome.untrusted = not judge_decoy(accuracy, read_decoy(out_dir))


_PATH_NOISE = re.compile(r"/work/submission/|/harness/")


def _log_excerpt(result: RunResult) -> str:
    text = result.stderr.decode("utf-8", "replace")
    if result.stderr_truncated:
        text += "\n[truncated]"
    return _PATH_NOISE.sub("", _tail(text, LOG_EXCERPT_BYTES))


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


__all__ = ["InfrastructureError", "ScoreConfig", "ScoreOutcome", "score_zip"]
