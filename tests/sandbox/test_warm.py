"""The /out size cap (cold and warm Docker) and the warm pool against the real engine.

The attack corpus of ``test_attacks.py`` is collected here a second time with ``backend``
overridden by a warm backend that refuses to fall back to a cold run, so every hostile
program also runs in a pre-started container; after each run the wrapper checks that the
container is gone and that no process carrying its slot token survived.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import numpy as np
import pytest

from sandbox.base import DEPLOYMENT_LABEL, RUN_LABEL, Limits, Mount, RunResult, RunSpec
from sandbox.docker_backend import DockerBackend
from sandbox.hostside import OutputWatcher
from sandbox.outfs import SLACK_BYTES, mounts_under
from sandbox.warm import WarmDockerBackend
from sandbox.warm_pool import Slot
from scorer.pipeline import ScoreConfig, score_zip
from tests.learner_models import build_verified_numpy, make_dataset, trained_params, zip_folder
from tests.sandbox.conftest import (
    ATTACK_LIMITS,
    IMAGE,
    innocent_run,
    make_backend,
    make_spec,
    processes_with,
)

# Collected again in this module, where ``backend`` is the warm one (see CheckedWarm).
from tests.sandbox.test_attacks import (  # noqa: F401
    test_a1_fork_bomb_hits_the_pids_limit,
    test_a2_thread_bomb_hits_the_pids_limit,
    test_a3_memory_bomb_is_oom_killed,
    test_a4_a10_b6_filling_tmpfs_and_writing_outside_fail_inside,
    test_a5_a6_cpu_spinners_are_killed_at_the_wall_limit,
    test_a7_sleeping_forever_times_out_and_stdin_is_empty,
    test_a8_ignoring_sigterm_does_not_outlive_the_wall_limit,
    test_a9_huge_output_is_capped_with_a_marker_and_bounded_memory,
    test_a11_fd_exhaustion_hits_nofile,
    test_a14_a15_double_forked_survivors_and_zombies_die_with_the_run,
    test_an_innocent_run_beside_a_fork_bomb_is_unaffected,
    test_b1_b2_network_is_loopback_only_and_odd_sockets_fail,
    test_b2_vsock_alg_and_io_uring_are_refused,
    test_b3_b4_b10_no_host_files_labels_secrets_or_identifying_names,
    test_b7_b8_b9_b11_privilege_and_kernel_surface_are_refused,
    test_planted_symlinks_and_fifos_in_out_are_not_followed,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]
# This test run's own deployment: its reaps never touch another run's sandboxes.
TEST_DEPLOYMENT = f"katakana-t{os.getpid()}-warm"
# numpy and IPython only: torch alone would take most of the attack suite's 256 MB.
TEST_PRELOAD = ("numpy", "IPython.core.interactiveshell")
OUT_CAP_LIMITS = dataclasses.replace(
    ATTACK_LIMITS, wall_seconds=30.0, memory_mb=512, out_max_bytes=64 << 20, out_max_files=200
)

FILL_OUT = """\
import json, os, sys
# Many files, each below the 128 MiB per-file cap: only a total cap stops this.
chunk = b"x" * (1 << 20)
for i in range(int(sys.argv[1])):
    with open(f"/out/part{i}", "wb") as f:
        for _ in range(32):
            f.write(chunk)
json.dump({"survived": True}, open("/out/report.json", "w"))
"""

MANY_FILES = """\
import json, os
os.makedirs("/out/deep/er", exist_ok=True)
for i in range(100000):
    open(f"/out/deep/er/f{i}", "w").close()
json.dump({"survived": True}, open("/out/report.json", "w"))
"""

# Issue 13, item 5: files unlinked while still open are invisible to a watcher that sums
# the tree; only the kernel (a capped tmpfs) stops them. 25 x 100 MiB, each file legal.
HIDDEN_OUT = """\
import json, os, sys
chunk = b"x" * (1 << 20)
written, held, refused = 0, [], None
for i in range(int(sys.argv[1])):
    f = open(f"/out/hidden{i}", "wb", buffering=0)
    os.unlink(f"/out/hidden{i}")
    held.append(f)
    for _ in range(100):
        try:
            f.write(chunk)
        except OSError as exc:
            refused = exc.errno
            break
        written += len(chunk)
        print("written", written, flush=True)
    if refused:
        break
print("refused", refused, flush=True)
for f in held:
    f.close()
json.dump({"written": written, "refused": refused}, open("/out/report.json", "w"))
"""

LEAVE_TRACES = """\
import json, os, subprocess
open("/tmp/left-by-the-hostile-run", "w").write("x")
subprocess.Popen(["sleep", "600"], start_new_session=True)
json.dump({"pid": os.getpid()}, open("/out/report.json", "w"))
"""

LOOK_FOR_TRACES = """\
import json, os
json.dump({
    "tmp": sorted(os.listdir("/tmp")),
    "sleepers": [p for p in os.listdir("/proc") if p.isdigit()
                 and b"sleep" in open(f"/proc/{p}/cmdline", "rb").read()],
}, open("/out/report.json", "w"))
"""


class CheckedWarm:
    """A warm backend for the attack suite: every run must go warm and leave nothing.

    ``name`` is "docker" so the suite's engine-specific branches apply to it as to a cold
    container; the result's ``backend`` says "docker-warm".
    """

    name = "docker"

    def __init__(self, inner: WarmDockerBackend, started: list[dict[str, Any]]) -> None:
        self.inner = inner
        self.started = started
        # Which slot each spec ran in. Two runs side by side (fork bomb + innocent) take
        # slots in either order, so "the next container started" would be a guess.
        self.slots: dict[str, Slot] = {}
        run_in_slot = inner._run_in_slot

        def recording(slot: Slot, spec: RunSpec, plan: Any) -> RunResult:
            self.slots[spec.name] = slot
            return run_in_slot(slot, spec, plan)

        inner._run_in_slot = recording  # type: ignore[method-assign]

    def run(self, spec: RunSpec) -> RunResult:
        # A full pool: two runs side by side (fork bomb + innocent) both find a container.
        assert self.inner.prewarm(spec, timeout=120), "the spec would run cold"
        result = self.inner.run(spec)
        assert result.backend == "docker-warm"
        slot = self.slots.pop(spec.name)
        assert processes_with(slot.token) == [], "processes of the warm container survived"
        with pytest.raises(docker.errors.NotFound):
            docker.from_env().containers.get(slot.container.id)
        return result

    def kill(self, name: str) -> None:
        self.inner.kill(name)


@pytest.fixture(scope="module")
def started() -> list[dict[str, Any]]:
    return []


@pytest.fixture(scope="module")
def warm(started: list[dict[str, Any]]) -> Iterator[WarmDockerBackend]:
    make_backend("docker")  # skips when the engine or the image is missing
    backend = WarmDockerBackend(
        pool_size=2, preload=TEST_PRELOAD, on_started=started.append, deployment=TEST_DEPLOYMENT
    )
    yield backend
    backend.close()


@pytest.fixture
def backend(warm: WarmDockerBackend, started: list[dict[str, Any]]) -> CheckedWarm:
    """Overrides conftest's ``backend`` for the attack tests imported above."""
    return CheckedWarm(warm, started)


def stage(run_dir: Path, source: str, *args: str, limits: Limits = OUT_CAP_LIMITS) -> RunSpec:
    spec = make_spec(run_dir, "innocent.py", limits=limits)
    (run_dir / "submission" / "hostile.py").write_text(source)
    return dataclasses.replace(spec, command=["python3", "hostile.py", *args])


def run_either(kind: str, warm: WarmDockerBackend, spec: RunSpec) -> RunResult:
    if kind == "cold":
        return DockerBackend().run(spec)
    assert warm.prewarm(spec, count=1, timeout=120)
    result = warm.run(spec)
    assert result.backend == "docker-warm"
    return result


# --------------------------------------------------------------------------- /out cap


@pytest.mark.parametrize("kind", ["cold", "warm"])
def test_it_kills_a_run_that_fills_out_with_files_below_the_per_file_cap(
    kind: str, warm: WarmDockerBackend, run_dir: Path
) -> None:
    spec = stage(run_dir, FILL_OUT, "40")  # 40 x 32 MiB = 1.25 GiB, each file legal
    free_before = shutil.disk_usage(run_dir).free
    peak = [0]
    stop = threading.Event()

    def sample() -> None:  # how far past the cap the cold run's /out got before the kill
        while not stop.wait(0.01):
            sizes = [p.lstat().st_size for p in spec.out_dir.glob("part*") if p.exists()]
            peak[0] = max(peak[0], sum(sizes))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = run_either(kind, warm, spec)
    stop.set()
    sampler.join()
    assert result.output_exceeded
    assert not result.timed_out
    assert result.exit_code != 0
    assert result.wall_seconds < 10
    assert list(spec.out_dir.iterdir()) == []  # discarded at once, not by the caller
    assert free_before - shutil.disk_usage(run_dir).free < 200 << 20
    if kind == "cold":
        assert peak[0] < (64 << 20) + (512 << 20)
    print(f"{kind}: killed after {result.wall_seconds:.2f} s, /out peaked at {peak[0] >> 20} MiB")


def run_any(kind: str, warm: WarmDockerBackend, spec: RunSpec) -> RunResult:
    if kind == "bwrap":
        return make_backend("bwrap").run(spec)
    return run_either(kind, warm, spec)


def hidden_bytes_written(result: RunResult) -> int:
    counts = [int(line.split()[1]) for line in result.stdout.decode().splitlines()
              if line.startswith("written ")]  # fmt: skip
    return max(counts, default=0)


@pytest.mark.parametrize("kind", ["cold", "warm", "bwrap"])
def test_files_unlinked_while_open_cannot_pass_the_out_cap(
    kind: str, warm: WarmDockerBackend, run_dir: Path
) -> None:
    spec = stage(run_dir, HIDDEN_OUT, "25")  # 2.4 GiB of hidden files were let through
    free_before = shutil.disk_usage(run_dir).free
    result = run_any(kind, warm, spec)
    written = hidden_bytes_written(result)
    print(f"{kind}: {written >> 20} MiB hidden in /out (cap 64 MiB), killed: "
          f"{result.output_exceeded}, {result.wall_seconds:.2f} s")  # fmt: skip
    # Killed for its output when the watcher saw the tmpfs past the cap; a run that fills
    # it faster than one watch interval meets ENOSPC first. Either way the kernel held it.
    assert result.output_exceeded or b"refused 28" in result.stdout
    assert written <= OUT_CAP_LIMITS.out_max_bytes + SLACK_BYTES
    if result.output_exceeded:
        assert list(spec.out_dir.iterdir()) == []
    assert free_before - shutil.disk_usage(run_dir).free < 200 << 20
    assert not mounts_under(run_dir), "the run's /out tmpfs is still mounted"


@pytest.mark.parametrize("kind", ["cold", "warm", "bwrap"])
def test_the_kernel_alone_refuses_hidden_out_bytes_past_the_cap(
    kind: str, warm: WarmDockerBackend, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watcher blinded: what is left is the tmpfs's size, enforced by the kernel.
    monkeypatch.setattr(OutputWatcher, "over_cap", lambda self: False)
    spec = stage(run_dir, HIDDEN_OUT, "25")
    result = run_any(kind, warm, spec)
    written = hidden_bytes_written(result)
    print(f"{kind}: without the watcher {written >> 20} MiB hidden, then ENOSPC")
    assert b"refused 28" in result.stdout  # ENOSPC
    assert written <= OUT_CAP_LIMITS.out_max_bytes + SLACK_BYTES
    assert result.exit_code == 0


@pytest.mark.parametrize("kind", ["cold", "warm"])
def test_it_kills_a_run_that_creates_too_many_files_in_out(
    kind: str, warm: WarmDockerBackend, run_dir: Path
) -> None:
    result = run_either(kind, warm, stage(run_dir, MANY_FILES))
    assert result.output_exceeded
    assert result.wall_seconds < 10
    assert list((run_dir / "out").iterdir()) == []


@pytest.mark.parametrize("kind", ["cold", "warm"])
def test_a_run_under_the_output_caps_keeps_its_outputs(
    kind: str, warm: WarmDockerBackend, run_dir: Path
) -> None:
    spec = stage(run_dir, FILL_OUT, "1")  # 32 MiB under a 64 MiB cap
    result = run_either(kind, warm, spec)
    assert not result.output_exceeded
    assert result.exit_code == 0
    assert (spec.out_dir / "part0").stat().st_size == 32 << 20
    assert json.loads((spec.out_dir / "report.json").read_text()) == {"survived": True}


# --------------------------------------------------------------------------- warm pool


def test_an_innocent_run_after_a_hostile_one_gets_a_fresh_container(
    warm: WarmDockerBackend, started: list[dict[str, Any]], tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    hostile = stage(tmp_path / "a", LEAVE_TRACES)
    innocent = stage(tmp_path / "b", LOOK_FOR_TRACES)
    first = run_either("warm", warm, hostile)
    hostile_container = started[-1]
    second = run_either("warm", warm, innocent)
    innocent_container = started[-1]
    assert first.exit_code == 0 and second.exit_code == 0
    assert innocent_container["Id"] != hostile_container["Id"]
    report = json.loads((innocent.out_dir / "report.json").read_text())
    assert report == {"tmp": [], "sleepers": []}
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(hostile_container["Id"])


def test_a_warm_container_has_the_cold_profile_and_no_label_mount(
    warm: WarmDockerBackend, started: list[dict[str, Any]], run_dir: Path
) -> None:
    spec = make_spec(run_dir, "innocent.py", limits=ATTACK_LIMITS)
    assert warm.prewarm(spec, count=1, timeout=120)
    result = warm.run(spec)
    assert result.backend == "docker-warm" and result.exit_code == 0
    attrs = started[-1]
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == spec.limits.pids
    assert host["Memory"] == host["MemorySwap"] == spec.limits.memory_mb << 20
    assert host["Init"] is True and host["IpcMode"] == "private"
    assert host["LogConfig"]["Type"] == "none"
    assert attrs["Config"]["User"] == "65534:65534"
    assert attrs["Name"] == "/" + spec.name  # renamed when the job started
    mounts = {(m["Destination"], m["RW"]) for m in attrs["Mounts"]}
    assert mounts == {
        ("/work/submission", False),
        ("/work/1_data", False),
        ("/harness", False),
        ("/control", False),
        ("/out", True),
    }
    assert json.loads((spec.out_dir / "report.json").read_text())["sum"] == 45


def test_a_legacy_spec_that_mounts_labels_runs_cold(warm: WarmDockerBackend, run_dir: Path) -> None:
    labels = run_dir / "test_label.npy"
    np.save(labels, np.eye(15, dtype=np.int32))
    spec = make_spec(
        run_dir,
        "innocent.py",
        extra_mounts=[Mount(labels, "/work/1_data/test_label.npy")],
    )
    assert warm.plan(spec) is None
    result = warm.run(spec)
    assert result.backend == "docker" and result.exit_code == 0


def test_the_wall_limit_counts_from_the_job_not_from_the_container_start(
    warm: WarmDockerBackend, run_dir: Path
) -> None:
    limits = dataclasses.replace(ATTACK_LIMITS, wall_seconds=3.0)
    spec = make_spec(run_dir, "sleep_forever.py", limits=limits)
    assert warm.prewarm(spec, count=1, timeout=120)
    time.sleep(3.5)  # idle longer than the wall limit
    result = warm.run(spec)
    assert result.backend == "docker-warm"
    assert result.timed_out
    assert json.loads((spec.out_dir / "report.json").read_text())["stdin"] == ""
    assert 3.0 <= result.wall_seconds < 3.0 + 4.0


def test_the_reaper_spares_an_idle_warm_container_but_not_an_old_cold_one(
    warm: WarmDockerBackend, run_dir: Path
) -> None:
    spec = make_spec(run_dir, "innocent.py", limits=ATTACK_LIMITS)
    assert warm.prewarm(spec, count=1, timeout=120)
    client = docker.from_env()
    name = f"{TEST_DEPLOYMENT}-sub-{int(time.time() * 1000)}-a1"
    labels = {RUN_LABEL: name, DEPLOYMENT_LABEL: TEST_DEPLOYMENT}
    client.containers.run(IMAGE, ["sleep", "600"], name=name, labels=labels, detach=True)
    time.sleep(1.1)
    reaped = warm.reap(older_than_seconds=1)
    assert name in reaped
    assert not any(r.startswith(f"{TEST_DEPLOYMENT}-warm-") for r in reaped)
    assert warm.run(spec).backend == "docker-warm"  # its pool container still works


def test_another_deployments_warm_pool_never_reaps_ours(
    warm: WarmDockerBackend, run_dir: Path
) -> None:
    # Issue 13, item 7, for the warm pool: another deployment's pool, reaping with no
    # grace, leaves this one's idle containers and runs alone.
    spec = make_spec(run_dir, "innocent.py", limits=ATTACK_LIMITS)
    assert warm.prewarm(spec, count=1, timeout=120)
    ours = [c.name for c in docker.from_env().containers.list(
        filters={"label": f"{DEPLOYMENT_LABEL}={TEST_DEPLOYMENT}"})]  # fmt: skip
    assert any(n.startswith(f"{TEST_DEPLOYMENT}-warm-") for n in ours)
    # A run of ours in progress (a cold one: a warm job is renamed the same way).
    name = f"{TEST_DEPLOYMENT}-sub-{int(time.time() * 1000)}-a1"
    labels = {RUN_LABEL: name, DEPLOYMENT_LABEL: TEST_DEPLOYMENT}
    running = docker.from_env().containers.run(
        IMAGE, ["sleep", "600"], name=name, labels=labels, detach=True
    )
    other = WarmDockerBackend(pool_size=0, deployment=f"{TEST_DEPLOYMENT}-other")
    try:
        time.sleep(1.1)
        assert other.reap(older_than_seconds=0) == []
        running.reload()
        assert running.status == "running"
    finally:
        other.close()
        running.remove(force=True)
    assert warm.run(spec).backend == "docker-warm"


def test_score_zip_gives_the_same_verdict_warm_and_cold(
    warm: WarmDockerBackend, tmp_path: Path
) -> None:
    x, t = make_dataset(40, seed=3)
    folder = build_verified_numpy(tmp_path / "sub", trained_params(x, t, epochs=3))
    zip_path = zip_folder(folder, tmp_path / "sub.zip")
    testset = tmp_path / "testset"
    testset.mkdir()
    tx, tt = make_dataset(10, seed=4)
    np.save(testset / "test_data.npy", tx)
    np.save(testset / "test_label.npy", tt)
    limits = Limits(wall_seconds=60, memory_mb=1024, cpus=1.0)
    outcomes = {}
    for kind, backend in (("cold", DockerBackend()), ("warm", warm)):
        config = ScoreConfig(
            backend=backend, image=IMAGE, work_root=tmp_path / f"runs-{kind}", limits=limits
        )
        if kind == "warm":
            spec_probe = _pipeline_spec(config, testset)
            assert warm.prewarm(spec_probe, count=1, timeout=120)
        outcomes[kind] = score_zip(
            zip_path, testset, run_name=f"katakana-test-{kind}", config=config
        )
    assert outcomes["cold"].status == outcomes["warm"].status == "scored"
    assert outcomes["warm"].backend == "docker-warm"
    assert outcomes["cold"].accuracy == outcomes["warm"].accuracy


def _pipeline_spec(config: ScoreConfig, testset: Path) -> RunSpec:
    # The spec score_zip builds for a verified entry, to warm the right profile first.
    from scorer.entry import EntryPoint
    from scorer.pipeline import _build_spec

    probe = testset.parent / "probe"
    (probe / "sub").mkdir(parents=True)
    (probe / "out").mkdir()
    entry = EntryPoint(
        contract="verified", path="submit_katakana.ipynb", kind="ipynb", reason="probe"
    )
    return _build_spec(entry, probe / "sub", testset, probe / "out", "probe", config)


def test_innocent_run_helper_passes_warm(backend: CheckedWarm, run_dir: Path) -> None:
    innocent_run(backend, run_dir)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- one pool per kind

PRELOADED = "import sys\nprint(sorted({'numpy', 'torch', 'tensorflow'} & set(sys.modules)))\n"


def test_each_kind_of_run_gets_a_container_that_preloaded_what_it_imports(
    warm: WarmDockerBackend, run_dir: Path
) -> None:
    # The pipeline names a zip's frameworks in KATAKANA_PRELOAD (scorer/frameworks.py).
    base = stage(run_dir, PRELOADED)
    seen = {}
    for kind, preload in (("numpy", "numpy"), ("torch", "numpy,torch")):
        spec = dataclasses.replace(
            base, name=f"{base.name}-{kind}", env={**base.env, "KATAKANA_PRELOAD": preload}
        )
        result = run_either("warm", warm, spec)
        assert result.exit_code == 0, result.stderr
        seen[kind] = result.stdout.decode().strip()
    assert seen == {"numpy": "['numpy']", "torch": "['numpy', 'torch']"}
