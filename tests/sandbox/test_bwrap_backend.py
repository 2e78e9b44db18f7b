"""BwrapBackend on this host: identity, environment, cgroup lifecycle, failures."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sandbox import bwrap_backend as bwrap_module
from sandbox.base import InfrastructureError, SandboxBackend
from sandbox.bwrap_backend import (
    DENIED_SOCKET_FAMILIES,
    DENIED_SYSCALLS,
    BwrapBackend,
    RunCgroup,
    seccomp_program,
)
from sandbox.image import confine
from tests.sandbox.conftest import innocent_run, make_spec


def test_the_seccomp_program_is_whole_bpf_instructions() -> None:
    program = seccomp_program()
    assert len(program) % 8 == 0
    assert 0 < len(program) // 8 < 4096  # the kernel's BPF_MAXINSNS


def test_bwrap_and_the_image_entrypoint_refuse_the_same_kernel_surface() -> None:
    # bwrap applies its own BPF; Docker runs go through the image's confine.py. A call
    # refused by one backend and allowed by the other would be a hole in one of them.
    assert set(confine.REFUSED_SYSCALLS) == set(DENIED_SYSCALLS)
    assert set(confine.REFUSED_FAMILIES) == set(DENIED_SOCKET_FAMILIES)


def test_it_runs_as_65534_with_only_the_given_environment(
    bwrap_backend: SandboxBackend, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", "worker-secret")
    spec = dataclasses.replace(
        make_spec(run_dir, "innocent.py", env={"OMP_NUM_THREADS": "1"}),
        command=["python3", "-c", "import os; print(os.getuid(), sorted(os.environ))"],
    )
    result = bwrap_backend.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == b"65534 ['HOME', 'LANG', 'OMP_NUM_THREADS', 'PATH', 'PWD']\n"
    assert result.image_digest.startswith("rootfs:")


def test_out_files_are_written_as_host_uid_65534_and_copied_out_by_the_worker(
    bwrap_backend: SandboxBackend, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners: list[int] = []
    copy_out = bwrap_module.finish_outputs

    def spy(result, outfs, spec):  # type: ignore[no-untyped-def]
        owners.extend(p.stat().st_uid for p in outfs.path.iterdir())
        copy_out(result, outfs, spec)

    monkeypatch.setattr(bwrap_module, "finish_outputs", spy)
    innocent_run(bwrap_backend, run_dir)
    # As root the worker drops to 65534 before bwrap; otherwise files are the caller's.
    assert owners and set(owners) == {65534 if os.geteuid() == 0 else os.geteuid()}
    # The copies the host reads afterwards are the worker's own, outside the capped tmpfs.
    assert (run_dir / "out" / "report.json").stat().st_uid == os.geteuid()


def test_a_run_killed_by_a_signal_reports_128_plus_the_signal(
    bwrap_backend: SandboxBackend, run_dir: Path
) -> None:
    spec = dataclasses.replace(
        make_spec(run_dir, "innocent.py"),
        command=["python3", "-c", "import os; os.kill(os.getpid(), 9)"],
    )
    assert bwrap_backend.run(spec).exit_code == 128 + 9


def test_a_missing_command_is_the_learners_exit_not_infrastructure(
    bwrap_backend: SandboxBackend, run_dir: Path
) -> None:
    spec = dataclasses.replace(make_spec(run_dir, "innocent.py"), command=["/no/such/program"])
    result = bwrap_backend.run(spec)
    assert result.exit_code not in (0, None)


def test_a_missing_rootfs_is_an_infrastructure_error(run_dir: Path) -> None:
    backend = BwrapBackend(rootfs=run_dir / "no-rootfs")
    with pytest.raises(InfrastructureError):
        backend.run(make_spec(run_dir, "innocent.py"))


def test_a_gpu_request_is_an_infrastructure_error(
    bwrap_backend: SandboxBackend, run_dir: Path
) -> None:
    spec = dataclasses.replace(make_spec(run_dir, "innocent.py"), gpu="GPU-0")
    with pytest.raises(InfrastructureError):
        bwrap_backend.run(spec)


@pytest.mark.skipif(os.geteuid() != 0, reason="per-run cgroups need root here")
def test_the_run_cgroup_holds_the_limits_and_is_removed_afterwards(
    bwrap_backend: SandboxBackend, run_dir: Path
) -> None:
    spec = make_spec(run_dir, "sleep_forever.py")
    spec = dataclasses.replace(spec, limits=dataclasses.replace(spec.limits, wall_seconds=3.0))
    seen: dict[str, str] = {}

    def look() -> None:
        pids = Path("/sys/fs/cgroup/pids/katakana") / spec.name
        for _ in range(100):
            if (pids / "pids.max").exists():
                seen["pids.max"] = (pids / "pids.max").read_text().strip()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=look)
    watcher.start()
    result = bwrap_backend.run(spec)
    watcher.join()
    assert result.timed_out
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("cgroup v2 host: the v1 path checked here does not apply")
    assert seen == {"pids.max": str(spec.limits.pids)}
    assert not (Path("/sys/fs/cgroup/pids/katakana") / spec.name).exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="per-run cgroups need root here")
def test_reap_kills_only_its_own_deployments_old_runs() -> None:
    # Issue 13, item 7: a run of deployment "<p>" and one of "<p>-x" (the same prefix and
    # more), both old; each deployment's reap takes its own and leaves the other running.
    from sandbox.base import Limits

    mine, theirs = f"katakana-t{os.getpid()}-x", f"katakana-t{os.getpid()}"
    sleepers = {}
    with contextlib.ExitStack() as stack:
        for deployment in (mine, theirs):
            name = f"{deployment}-sub-1-a1"
            stack.enter_context(bwrap_module._owned(deployment, name))
            cgroup = stack.enter_context(RunCgroup.create(name, Limits()))
            assert cgroup.enforced
            sleepers[deployment] = subprocess.Popen(["sleep", "600"])
            for procs in cgroup.procs_files():
                procs.write_text(str(sleepers[deployment].pid))
        time.sleep(1.1)
        for deployment in (mine, theirs):  # what the server's reaper compares, per deployment
            listed = BwrapBackend(rootfs=Path("/"), deployment=deployment).list_runs()
            assert listed == [f"{deployment}-sub-1-a1"]
        assert BwrapBackend(rootfs=Path("/"), deployment=mine).reap(older_than_seconds=1) == [
            f"{mine}-sub-1-a1"
        ]
        assert sleepers[mine].wait(timeout=5) == -9
        assert sleepers[theirs].poll() is None, "another deployment's run was reaped"
        assert BwrapBackend(rootfs=Path("/"), deployment=theirs).reap(older_than_seconds=1)
        assert sleepers[theirs].wait(timeout=5) == -9
