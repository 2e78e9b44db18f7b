"""How a zip is scored: intake → entry detection → sandbox run → safe read → metrics.

``score_zip`` is the one function the server's Celery task and the CLI call. It takes
plain data (paths, a backend, limits) and returns a ``ScoreOutcome``; it raises only
``sandbox.base.InfrastructureError`` (the caller retries elsewhere, the learner is not
charged). Labels are loaded here, on the host, and enter the sandbox only in the legacy
contract, whose scores are therefore flagged as self-reported.
"""

from __future__ import annotations

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
from scorer.archive import ArchiveLimits, extract_submission
from scorer.entry import EntryPoint, detect_entry
from scorer.errors import ErrorClass, ScoringError, gettext_noop
from scorer.legacy import judge_decoy, parse_legacy_stdout, read_decoy
from scorer.metrics import Metrics, compute_metrics
from scorer.predictions import read_predictions, read_result_json, result_error

HARNESS_DIR = Path(__file__).resolve().parent.parent / "sandbox" / "runner"
SANDBOX_SUBMISSION = "/work/submission"
SANDBOX_DATA = "/work/1_data/test_data.npy"
SANDBOX_LABELS = "/work/1_data/test_label.npy"
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
        out_dir = workdir / "out"
        out_dir.mkdir()
        spec = _build_spec(entry, extracted.root, testset_dir, out_dir, run_name, config)
        _phase(config, "running")
        run_started = time.monotonic()
        result = config.backend.run(spec)
        durations["sandbox"] = time.monotonic() - run_started
        _phase(config, "scoring")
        outcome = _judge(result, entry, out_dir, testset_dir, config)
        outcome.durations = {**durations, **outcome.durations}
        outcome.notes = notes + outcome.notes
        return outcome
    finally:
        if not config.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


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
) -> RunSpec:
    mounts = [
        Mount(root, SANDBOX_SUBMISSION),
        Mount(testset_dir / "test_data.npy", SANDBOX_DATA),
        Mount(config.harness_dir, "/harness"),
    ]
    if entry.contract == "legacy":
        _stage_legacy_util(root, config.harness_dir)
        # The legacy contract hands the labels to learner code: the score is self-reported.
        mounts.append(Mount(testset_dir / "test_label.npy", SANDBOX_LABELS))
    # Making these paths usable by the sandbox user (uid 65534) is each isolating
    # backend's job (sandbox.docker_backend.prepare_host_paths), not the pipeline's.
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
    result: RunResult, entry: EntryPoint, out_dir: Path, testset_dir: Path, config: ScoreConfig
) -> ScoreOutcome:
    outcome = ScoreOutcome(
        status="failed",
        contract=entry.contract,
        entry=entry.path,
        backend=result.backend,
        image_digest=result.image_digest,
        log_excerpt=_log_excerpt(result),
        self_reported=entry.contract == "legacy",
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
        _raise_reported_error(report, result)
        if entry.contract == "verified":
            _score_verified(outcome, out_dir, testset_dir)
        else:
            _score_legacy(outcome, result, out_dir)
        if isinstance(report.get("seconds"), dict):
            outcome.durations.update(
                {f"harness_{k}": float(v) for k, v in report["seconds"].items()}
            )
        outcome.status = "scored"
    except ScoringError as error:
        outcome.error = error
    return outcome


def _raise_reported_error(report: dict[str, Any], result: RunResult) -> None:
    """Turn the harness's (untrusted) report, or a silent crash, into a learner error."""
    if report.get("error_class"):
        error = result_error(report)
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
            {"status": result.exit_code},
            detail=_tail(result.stderr.decode("utf-8", "replace"), 4000),
        )


def _score_verified(outcome: ScoreOutcome, out_dir: Path, testset_dir: Path) -> None:
    labels = np.load(testset_dir / "test_label.npy", allow_pickle=False)
    predictions = read_predictions(out_dir, len(labels))
    metrics = compute_metrics(predictions, labels)
    outcome.metrics = metrics
    outcome.accuracy = metrics.accuracy
    outcome.loss = metrics.loss


def _score_legacy(outcome: ScoreOutcome, result: RunResult, out_dir: Path) -> None:
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
    outcome.accuracy, outcome.loss = accuracy, loss
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
