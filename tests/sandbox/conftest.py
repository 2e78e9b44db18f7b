"""Fixtures for sandbox tests: real backends (skipped with a reason when unavailable),
hostile programs staged as a submission, and the invariants every attack must leave true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sandbox.base import RUN_LABEL, Limits, Mount, RunResult, RunSpec, SandboxBackend

HOSTILE_DIR = Path(__file__).parent / "hostile"
# KATAKANA_TEST_IMAGE tries a freshly built image (katakana-sandbox:cpu-<hash>) before it
# is tagged :cpu, which every other test session on the engine uses.
IMAGE = os.environ.get("KATAKANA_TEST_IMAGE", "katakana-sandbox:cpu")
# Small limits keep the attack suite fast on a 2-core machine.
ATTACK_LIMITS = Limits(
    wall_seconds=8.0,
    memory_mb=256,
    pids=64,
    cpus=1.0,
    tmpfs_mb=32,
    shm_mb=16,
    nofile=256,
    stream_cap_bytes=1 << 20,
)


def docker_unavailable_reason() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(IMAGE)
    except Exception as exc:  # any failure means: skip, with the reason
        return f"docker or image {IMAGE} unavailable ({type(exc).__name__}: {exc}); "
    return None


def bwrap_unavailable_reason() -> str | None:
    from sandbox.image.build import rootfs_is_complete, rootfs_path

    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed"
    if not rootfs_is_complete(rootfs_path()):
        return f"no sandbox rootfs at {rootfs_path()}: run python -m sandbox.image build"
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here: {probe.stderr.decode()[:200]}"
    return None


_REASONS: dict[str, str | None] = {}


def _reason(name: str) -> str | None:
    if name not in _REASONS:
        docker = name.startswith("docker")
        probe = docker_unavailable_reason if docker else bwrap_unavailable_reason
        _REASONS[name] = probe()
    return _REASONS[name]


def require_backend(name: str) -> None:
    """The one rule for a test that needs a sandbox backend: skip with the reason where
    it is missing, except Docker (engine and image) where KATAKANA_REQUIRE_DOCKER=1, as
    ``.ci/run`` sets: there a missing Docker or image fails the test."""
    reason = _reason(name)
    if not reason:
        return
    if name.startswith("docker") and os.environ.get("KATAKANA_REQUIRE_DOCKER") == "1":
        pytest.fail(f"KATAKANA_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


def make_backend(name: str, **options: Any) -> SandboxBackend:
    require_backend(name)
    from sandbox.backends import get_backend

    return get_backend(name, **options)


@pytest.fixture(params=["docker", "bwrap"])
def backend(request: pytest.FixtureRequest) -> SandboxBackend:
    return make_backend(request.param)


@pytest.fixture
def docker_backend() -> SandboxBackend:
    return make_backend("docker")


@pytest.fixture
def bwrap_backend() -> SandboxBackend:
    return make_backend("bwrap")


@dataclass
class HostileRun:
    spec: RunSpec
    result: RunResult
    run_dir: Path
    token: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.spec.out_dir


def make_spec(
    run_dir: Path,
    script: str,
    *,
    limits: Limits = ATTACK_LIMITS,
    env: dict[str, str] | None = None,
    extra_mounts: list[Mount] | None = None,
    token: str | None = None,
) -> RunSpec:
    """Stage ``hostile/<script>`` as the submission and build the spec that runs it."""
    submission = run_dir / "submission"
    submission.mkdir()
    shutil.copy(HOSTILE_DIR / script, submission / script)
    token = token or uuid.uuid4().hex
    return RunSpec(
        name=f"katakana-test-{token[:12]}",
        image=IMAGE,
        # The token rides in argv so surviving processes can be found on the host.
        command=["python3", script, token],
        workdir="/work/submission",
        mounts=[Mount(submission, "/work/submission"), *(extra_mounts or [])],
        out_dir=run_dir / "out",
        limits=limits,
        env=env or {},
        labels={"katakana.test": "1"},
    )


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Random names, as in production: the run's host path says nothing about the learner.
    path = Path(tempfile.mkdtemp(prefix="kr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run_hostile(backend: SandboxBackend, run_dir: Path):  # type: ignore[no-untyped-def]
    """Run a hostile script, then check the invariants every attack must leave true."""

    def _run(script: str, **kwargs: Any) -> HostileRun:
        free_before = shutil.disk_usage(run_dir).free
        spec = make_spec(run_dir, script, **kwargs)
        token = spec.command[-1]
        result = backend.run(spec)
        report_path = spec.out_dir / "report.json"
        report = {}
        if report_path.is_file() and not report_path.is_symlink():
            report = json.loads(report_path.read_text())
        assert_nothing_survives(backend, spec.name, token)
        # Other engineers write to this disk at the same time: allow slack, not gigabytes.
        assert free_before - shutil.disk_usage(run_dir).free < 200 << 20
        return HostileRun(spec, result, run_dir, token, report)

    return _run


def assert_nothing_survives(backend: SandboxBackend, name: str, token: str) -> None:
    assert not processes_with(token), f"processes of run {name} survived"
    if backend.name == "docker":
        import docker

        left = docker.from_env().containers.list(all=True, filters={"label": f"{RUN_LABEL}={name}"})
        assert left == [], f"container {name} survived"
    if backend.name == "bwrap":
        assert not list(Path("/sys/fs/cgroup").glob(f"*/katakana/{name}")), "cgroup survived"


def processes_with(token: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(proc.name))
    return found


def innocent_run(backend: SandboxBackend, run_dir: Path) -> RunResult:
    spec = make_spec(run_dir, "innocent.py")
    result = backend.run(spec)
    assert result.exit_code == 0, result.stderr
    assert json.loads((spec.out_dir / "report.json").read_text())["sum"] == 45
    return result
