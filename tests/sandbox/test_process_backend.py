"""ProcessBackend: the unisolated backend's layout emulation, capture caps and wall limit."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox.base import TRUNCATION_MARKER, Limits, Mount, RunSpec
from sandbox.process_backend import ProcessBackend


def spec(
    tmp_path: Path,
    code: str,
    *,
    wall: float = 30.0,
    cap: int = 1 << 20,
    name: str = "katakana-proc-test",
) -> RunSpec:
    submission = tmp_path / "submission"
    data = tmp_path / "data"
    submission.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    return RunSpec(
        name=name,
        image="host",
        command=["python3", "-c", code, "/work/1_data/data.txt", "/out"],
        workdir="/work/submission",
        mounts=[Mount(submission, "/work/submission"), Mount(data, "/work/1_data")],
        out_dir=tmp_path / "out",
        limits=Limits(wall_seconds=wall, stream_cap_bytes=cap),
        env={"WHERE": "/out/x", "OTHER": "plain", "HOME": "/tmp"},
    )


@pytest.fixture
def backend() -> ProcessBackend:
    return ProcessBackend()


def test_it_emulates_the_sandbox_layout(tmp_path: Path, backend: ProcessBackend) -> None:
    (tmp_path / "out").mkdir()
    run_spec = spec(
        tmp_path,
        (
            "import os, sys\n"
            "print(open('../1_data/data.txt').read())\n"  # relative, as the course's util does
            "print(open(sys.argv[1]).read())\n"
            "open(os.path.join(sys.argv[2], 'written.txt'), 'w').write('hi')\n"
            "print(os.listdir('.'))\n"
            "print(os.environ['WHERE'].endswith('/out/x'), os.environ['OTHER'])\n"
            "print(os.environ['HOME'] != '/tmp' and os.path.isdir(os.environ['HOME']))\n"
        ),
    )
    (tmp_path / "data" / "data.txt").write_text("DATA")
    (tmp_path / "submission" / "model.pickle").write_text("m")

    result = backend.run(run_spec)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "DATA",
        "DATA",
        "['model.pickle']",
        "True plain",
        "True",
    ]
    assert (tmp_path / "out" / "written.txt").read_text() == "hi"
    assert (result.backend, result.image_digest) == ("process", "host")


def test_stdin_is_empty(tmp_path: Path, backend: ProcessBackend) -> None:
    (tmp_path / "out").mkdir()
    result = backend.run(spec(tmp_path, "import sys; print(repr(sys.stdin.read()))"))

    assert result.stdout == b"''\n"


def test_it_kills_the_whole_process_group_at_the_wall_limit(
    tmp_path: Path, backend: ProcessBackend
) -> None:
    (tmp_path / "out").mkdir()
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "open(sys.argv[2] + '/child.pid', 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(300)\n"
    )
    started = time.monotonic()
    result = backend.run(spec(tmp_path, code, wall=1.5))

    assert result.timed_out and result.exit_code == -9
    assert time.monotonic() - started < 10
    assert result.stdout == b"started\n"
    child = int((tmp_path / "out" / "child.pid").read_text())
    time.sleep(0.2)
    assert not _alive(child)


def test_it_returns_when_the_command_exits_despite_a_background_survivor(
    tmp_path: Path, backend: ProcessBackend
) -> None:
    (tmp_path / "out").mkdir()
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '300'])\n"  # inherits and holds the pipes
        "open(sys.argv[2] + '/child.pid', 'w').write(str(child.pid))\n"
    )
    started = time.monotonic()
    result = backend.run(spec(tmp_path, code, wall=60))

    assert result.exit_code == 0 and not result.timed_out
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    assert not _alive(int((tmp_path / "out" / "child.pid").read_text()))


def test_it_caps_each_captured_stream(tmp_path: Path, backend: ProcessBackend) -> None:
    (tmp_path / "out").mkdir()
    code = (
        "import sys\n"
        "for _ in range(200):\n"
        "    sys.stdout.write('x' * 50000)\n"
        "sys.stderr.write('small')\n"
    )
    result = backend.run(spec(tmp_path, code, cap=4096))

    assert result.exit_code == 0
    assert result.stdout_truncated and not result.stderr_truncated
    assert result.stdout == b"x" * 4096 + TRUNCATION_MARKER
    assert result.stderr == b"small"


def test_kill_by_name_stops_a_running_command(tmp_path: Path, backend: ProcessBackend) -> None:
    (tmp_path / "out").mkdir()
    run_spec = spec(tmp_path, "import time; time.sleep(300)", wall=120, name="to-kill")
    results = []
    worker = threading.Thread(target=lambda: results.append(backend.run(run_spec)))
    worker.start()
    deadline = time.monotonic() + 10
    while "to-kill" not in backend.list_runs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.list_runs() == ["to-kill"]
    backend.kill("to-kill")
    worker.join(10)

    assert not worker.is_alive()
    assert results[0].exit_code == -9 and not results[0].timed_out
    assert backend.list_runs() == []  # what the server's reaper would find: nothing
    assert backend.why_killed("to-kill", since=0) is None  # no engine kills a child
    backend.kill("to-kill")  # idempotent


def test_python_commands_run_with_this_interpreter(tmp_path: Path, backend: ProcessBackend) -> None:
    (tmp_path / "out").mkdir()
    result = backend.run(spec(tmp_path, "import sys; print(sys.executable)"))

    assert result.stdout.decode().strip() == sys.executable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_single_file_mounts_resolve_from_the_submission_folder(
    tmp_path: Path, backend: ProcessBackend
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "labels.npy").write_text("LABELS")
    run_spec = spec(tmp_path, "print(open('../1_data/test_label.npy').read())")
    run_spec = RunSpec(
        **{
            **run_spec.__dict__,
            "mounts": [
                *run_spec.mounts[:1],
                Mount(tmp_path / "labels.npy", "/work/1_data/test_label.npy"),
            ],
        }
    )

    result = backend.run(run_spec)

    assert result.stdout == b"LABELS\n", result.stderr
