"""The sandbox attack corpus (anchors-sandbox.md §2, A1–A15, B1–B11) against real backends.

Every test runs a hostile program from ``hostile/`` through Docker and through bubblewrap
(a backend that is not available here is skipped with the reason), asserts the verdict
and what the program saw, and, through the ``run_hostile`` fixture, that nothing of the
run survives (no process carrying its token, no container, no cgroup) and that the host
disk did not shrink.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import resource
import socket
import threading
from pathlib import Path

import pytest

from sandbox.base import TRUNCATION_MARKER, SandboxBackend
from sandbox.gpu import gpu_health, list_gpus
from tests.sandbox.conftest import (
    ATTACK_LIMITS,
    innocent_run,
    make_spec,
    processes_with,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SHORT_WALL = dataclasses.replace(ATTACK_LIMITS, wall_seconds=4.0)
# Killing and removing a container takes a moment; the verdict must still be prompt.
KILL_SLACK_SECONDS = 4.0


def test_a1_fork_bomb_hits_the_pids_limit(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("fork_bomb.py")
    assert run.report["errno"] == 11  # EAGAIN
    assert run.report["children"] < ATTACK_LIMITS.pids
    assert run.result.exit_code == 0


def test_a2_thread_bomb_hits_the_pids_limit(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("thread_bomb.py")
    assert run.report["error"] is not None
    assert run.report["threads"] < ATTACK_LIMITS.pids


def test_a3_memory_bomb_is_oom_killed(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("memory_bomb.py")
    assert run.result.oom_killed
    assert not run.result.timed_out
    assert run.result.exit_code != 0
    assert "survived" not in run.report


def test_a4_a10_b6_filling_tmpfs_and_writing_outside_fail_inside(run_hostile) -> None:  # type: ignore[no-untyped-def]
    from sandbox.hostside import FILE_SIZE_CAP_BYTES

    run = run_hostile("fill_tmpfs.py")
    report = run.report
    assert report["tmp"]["errno"] == "ENOSPC"
    assert report["tmp"]["written"] <= ATTACK_LIMITS.tmpfs_mb << 20
    assert report["shm"]["errno"] == "ENOSPC"
    assert report["shm"]["written"] <= ATTACK_LIMITS.shm_mb << 20
    for path, outcome in report["write"].items():
        assert outcome in {"EROFS", "EACCES", "ENOENT"}, path
    assert report["out"]["errno"] == "EFBIG"
    assert report["out"]["written"] <= FILE_SIZE_CAP_BYTES
    assert run.result.exit_code == 0


def test_a5_a6_cpu_spinners_are_killed_at_the_wall_limit(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("cpu_spin.py", limits=SHORT_WALL)
    assert run.result.timed_out
    assert run.result.exit_code is None
    assert run.result.wall_seconds < SHORT_WALL.wall_seconds + KILL_SLACK_SECONDS


def test_a7_sleeping_forever_times_out_and_stdin_is_empty(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("sleep_forever.py", limits=SHORT_WALL)
    assert run.result.timed_out
    assert run.report == {"stdin": "", "isatty": [False, False]}


def test_a8_ignoring_sigterm_does_not_outlive_the_wall_limit(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("ignore_sigterm.py", limits=SHORT_WALL)
    assert run.report == {"ignoring": True}
    assert run.result.timed_out
    assert run.result.wall_seconds < SHORT_WALL.wall_seconds + KILL_SLACK_SECONDS


def test_a9_huge_output_is_capped_with_a_marker_and_bounded_memory(run_hostile) -> None:  # type: ignore[no-untyped-def]
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = run_hostile("huge_output.py")
    cap = ATTACK_LIMITS.stream_cap_bytes
    assert run.result.exit_code == 0
    assert run.result.stdout_truncated and run.result.stderr_truncated
    # The head and the tail of each stream are kept, the middle dropped.
    kept = b"x" * (cap - cap // 8) + TRUNCATION_MARKER + b"x" * (cap // 8)
    assert run.result.stdout == kept
    assert run.result.stderr == kept
    # 128 MiB went through the worker; its peak memory grew by far less.
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb) / 1024
    assert grown_mb < 48


def test_a11_fd_exhaustion_hits_nofile(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("fd_exhaustion.py")
    assert run.report["errno"] == "EMFILE"
    assert run.report["fds"] <= ATTACK_LIMITS.nofile


def test_a14_a15_double_forked_survivors_and_zombies_die_with_the_run(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("survivors.py")
    assert run.result.exit_code == 0
    assert not run.result.timed_out
    assert run.report["zombies"] == 30
    # The token-bearing grandchild is checked by the fixture; the detached `sleep` here.
    assert processes_with("987654") == []


def test_b1_b2_network_is_loopback_only_and_odd_sockets_fail(run_hostile) -> None:  # type: ignore[no-untyped-def]
    run = run_hostile("network.py")
    report = run.report
    assert report["interfaces"] == ["lo"]
    assert all(outcome != "connected" for outcome in report["connect"].values()), report
    assert report["dns"] == "gaierror"
    assert report["sockets"]["raw"] == "EPERM"
    assert report["sockets"]["packet"] == "EPERM"


def test_b2_vsock_alg_and_io_uring_are_refused(run_hostile) -> None:  # type: ignore[no-untyped-def]
    # Docker 20.10's own default profile allows AF_VSOCK and io_uring; the image's
    # entrypoint filter (sandbox/image/confine.py) and bwrap's --seccomp refuse them.
    run = run_hostile("kernel_surface.py")
    assert run.report["vsock"] in {"EAFNOSUPPORT", "EPERM"}
    assert run.report["vsock_high_bits"] in {"EAFNOSUPPORT", "EPERM"}
    assert run.report["alg"] in {"EAFNOSUPPORT", "EPERM"}
    assert run.report["io_uring_setup"] in {"EPERM", "ENOSYS"}


def test_b1_the_host_redis_answers_the_host_but_not_the_sandbox(run_hostile) -> None:  # type: ignore[no-untyped-def]
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on this host's loopback to compare with")
    run = run_hostile("network.py")
    assert run.report["connect"]["127.0.0.1:6379"] == "ECONNREFUSED"


def test_b3_b4_b10_no_host_files_labels_secrets_or_identifying_names(  # type: ignore[no-untyped-def]
    run_hostile, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KATAKANA_TEST_SECRET", "s3cret-worker-value")
    labels = run_dir / "labels"  # beside the run's own dirs, never mounted
    labels.mkdir()
    (labels / "test_label.npy").write_bytes(b"labels")
    run = run_hostile("host_files.py", env={"OMP_NUM_THREADS": "1"})
    report = run.report
    assert set(report["env"]) - {"PATH", "LANG", "HOSTNAME", "PWD"} == {"HOME", "OMP_NUM_THREADS"}
    assert report["env"]["HOME"] == "/tmp"
    everything = json.dumps(report)
    assert "s3cret-worker-value" not in everything
    assert run.spec.name not in everything
    assert str(run_dir) not in report["mountinfo"] or run.spec.name not in report["mountinfo"]
    assert report["found"] == []
    assert not any(report["paths"].values()), report["paths"]
    assert report["shadow"] in {"PermissionError", "FileNotFoundError"}
    assert report["uid"] == [65534, 65534, 65534, 65534]
    assert set(report["groups"]) <= {65534}
    assert report["hostname"] == "sandbox"
    assert len(report["cmdlines"]) < 6  # the sandbox's own few processes only


def test_b7_b8_b9_b11_privilege_and_kernel_surface_are_refused(  # type: ignore[no-untyped-def]
    run_hostile, backend: SandboxBackend
) -> None:
    run = run_hostile("privilege.py")
    report = run.report
    assert report["setuid0"] in {"EPERM", "EINVAL"}  # EINVAL: uid 0 unmapped (bwrap)
    assert report["unshare_user"] in {"EPERM", "ENOSPC"}
    assert report["unshare_mount_net"] == "EPERM"
    assert report["mount_tmpfs"] == "EPERM"
    assert report["mknod"] == "EPERM"
    assert report["chroot"] == "EPERM"
    for call in ("keyctl", "add_key", "bpf", "perf_event_open", "userfaultfd"):
        assert report[call] == "EPERM", call
    if backend.name == "bwrap":
        assert report["ptrace_own_child"] == "EPERM"
    assert set(report["tiocsti"].values()) <= {"ENOTTY", "EPERM", "EIO", "EBADF"}
    assert report["uid_after"] == [65534, 65534]
    assert report["no_new_privs"] == ["1"]
    assert report["cap_eff"] == ["0000000000000000"]
    # B9: kill(-1, SIGKILL) reached only the sandbox's own processes: we are still here.
    assert report["visible_pids"] < 6
    assert run.result.exit_code == 0


def test_planted_symlinks_and_fifos_in_out_are_not_followed(run_hostile) -> None:  # type: ignore[no-untyped-def]
    passwd_before = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    run = run_hostile("symlink_out.py")
    assert run.result.exit_code == 0
    assert (run.out_dir / "predictions.npy").is_symlink()
    assert (run.out_dir / "result.json").is_symlink()
    assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() == passwd_before
    # Left for the host reader, which must refuse them (O_NOFOLLOW, S_ISREG).
    assert os.readlink(run.out_dir / "predictions.npy") == "/etc/passwd"


def test_an_innocent_run_beside_a_fork_bomb_is_unaffected(
    backend: SandboxBackend, run_dir: Path, tmp_path: Path
) -> None:
    bomb_dir = tmp_path / "bomb"
    bomb_dir.mkdir()
    bomb = make_spec(bomb_dir, "fork_bomb.py")
    bomb_result = []
    thread = threading.Thread(target=lambda: bomb_result.append(backend.run(bomb)))
    thread.start()
    innocent_run(backend, run_dir)
    thread.join(60)
    assert bomb_result and bomb_result[0].exit_code == 0
    assert processes_with(bomb.command[-1]) == []


@pytest.mark.gpu
def test_a12_b5_a_gpu_run_sees_one_gpu_and_leaves_it_healthy(
    docker_backend: SandboxBackend, run_dir: Path
) -> None:
    gpus = list_gpus()
    if not gpus:
        pytest.skip("no NVIDIA GPU on this host")
    spec = dataclasses.replace(
        make_spec(run_dir, "innocent.py"),
        command=["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"],
        gpu=gpus[0],
    )
    result = docker_backend.run(spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().split() == [gpus[0]]
    gpu_health(gpus[0])
