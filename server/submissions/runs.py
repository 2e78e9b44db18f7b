"""The sandbox runs of this deployment: their names, the backend that runs them, reaping.

One module for what the worker (``scoring``) and the sweeper both need to know about
sandboxes, so they cannot disagree: a run is named after its submission and attempt
(``<run prefix>-sub-<id>-a<attempt>``), the backend is the one the settings name, made
for this deployment only, and a run whose attempt no longer owns its submission is an
orphan to kill. The server asks the backend (``SandboxBackend``) and never an engine
directly, whichever backend it is.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from sandbox.backends import get_backend
from sandbox.base import SandboxBackend
from sandbox.outfs import release_under
from sandbox.warm_pool import release_dead_roots
from server.submissions.models import Status, Submission

log = logging.getLogger(__name__)

# Run directories of dead attempts are removed once this old (seconds).
RUN_DIR_GRACE_SECONDS = 60.0


def run_name(submission: Submission, attempt: int | None = None) -> str:
    """The sandbox name of ``attempt`` (default: the current one) of ``submission``.

    Named after the attempt: a retry can never run beside a live earlier attempt."""
    number = submission.attempts if attempt is None else attempt
    return f"{settings.KATAKANA_RUN_PREFIX}-sub-{submission.pk}-a{number}"


def parse_run_name(name: str) -> tuple[int, int] | None:
    """(submission id, attempt) of a sandbox we named, None for anyone else's."""
    match = re.fullmatch(rf"{re.escape(settings.KATAKANA_RUN_PREFIX)}-sub-(\d+)-a(\d+)", name)
    return (int(match[1]), int(match[2])) if match else None


def sandbox_backend() -> SandboxBackend:
    """The backend the settings name, labelling and reaping only this deployment's runs."""
    name = settings.KATAKANA_SANDBOX_BACKEND
    if name == "process":  # a learner's own machine: no engine shared with anyone
        return get_backend(name)
    return get_backend(name, deployment=settings.KATAKANA_RUN_PREFIX)


def live_attempts(ids: set[int]) -> set[tuple[int, int]]:
    """(id, attempt) of the runs that still own their submission (lease not expired)."""
    rows = Submission.objects.filter(
        pk__in=ids, status=Status.RUNNING, lease_until__gt=timezone.now()
    ).values_list("pk", "attempts")
    return {(pk, attempts) for pk, attempts in rows}


def reap_orphans(backend: SandboxBackend | None = None) -> int:
    """Kill this host's sandboxes (and scratch directories) of attempts no longer live.

    Runs from the sweeper and at the start of every scoring task, so every worker host
    cleans up after its own dead workers, not only the host running beat. Two rules: a
    run of ours whose attempt no longer owns its submission is killed at once; any
    sandbox of this deployment older than the longest a run may take (the operator's
    wall ceiling plus a minute) is killed too, which catches what no name says (a warm
    pool's idle containers add their idle time). Never raises.
    """
    reaped = 0
    try:
        backend = backend or sandbox_backend()
        ours = {name: parsed for name in backend.list_runs() if (parsed := parse_run_name(name))}
        # Listed before the database is read: a sandbox in the list belongs to an attempt
        # that was already claimed, so "not live" really means dead, never "not yet".
        live = live_attempts({pk for pk, _ in ours.values()})
        for name, attempt in ours.items():
            if attempt not in live:
                backend.kill(name)
                reaped += 1
        reaped += len(backend.reap(older_than_seconds=settings.KATAKANA_WALL_SECONDS + 60))
    except Exception:
        log.exception("reaping sandboxes failed")
    try:
        _remove_dead_run_dirs()
        release_dead_roots()  # warm pools of killed workers: their /out mounts and dirs
    except Exception:
        log.exception("removing old run directories failed")
    return reaped


def _remove_dead_run_dirs() -> None:
    # score_zip makes "<run name>-<random>" under KATAKANA_RUNS_DIR and removes it in a
    # finally; a killed worker leaves it behind (a disk-full risk, anchors-sandbox §3d).
    root = Path(settings.KATAKANA_RUNS_DIR)
    if not root.is_dir():
        return
    found: dict[Path, tuple[int, int]] = {}
    for path in root.iterdir():
        parsed = parse_run_name(path.name.rsplit("-", 1)[0])
        if parsed and path.is_dir() and time.time() - path.stat().st_mtime > RUN_DIR_GRACE_SECONDS:
            found[path] = parsed
    if not found:
        return
    live = live_attempts({pk for pk, _ in found.values()})
    for path, attempt in found.items():
        if attempt not in live:
            release_under(path)  # its /out tmpfs first: rmtree must not reach into a mount
            shutil.rmtree(path, ignore_errors=True)
