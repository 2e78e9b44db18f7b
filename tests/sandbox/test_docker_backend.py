"""DockerBackend against the real engine: the hardened profile as Docker records it
(``docker inspect`` through ``on_started``), lifecycle, reaping and engine failures."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox.base import DEPLOYMENT_LABEL, RUN_LABEL, InfrastructureError, Mount
from sandbox.docker_backend import DockerBackend
from sandbox.image.build import CONFINE_ENTRYPOINT
from tests.sandbox.conftest import IMAGE, innocent_run, make_backend, make_spec

pytestmark = pytest.mark.docker


@pytest.fixture
def inspected() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def backend(inspected: list[dict[str, Any]]) -> DockerBackend:
    make_backend("docker")  # skips when the engine or the image is missing
    return DockerBackend(on_started=inspected.append)


def test_it_runs_with_the_hardened_profile(
    backend: DockerBackend, inspected: list[dict[str, Any]], run_dir: Path
) -> None:
    data = run_dir / "data"
    data.mkdir()
    (data / "test_data.npy").write_bytes(b"x")
    spec = make_spec(
        run_dir,
        "innocent.py",
        env={"OMP_NUM_THREADS": "2"},
        extra_mounts=[Mount(data, "/work/1_data")],
    )
    innocent = backend.run(spec)
    assert innocent.exit_code == 0
    assert innocent.stdout == b"innocent ok\n"
    host = inspected[0]["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]  # default seccomp stays on
    assert host["Privileged"] is False
    assert host["PidsLimit"] == spec.limits.pids
    assert host["Memory"] == host["MemorySwap"] == spec.limits.memory_mb << 20
    assert host["NanoCpus"] == int(spec.limits.cpus * 1e9)
    assert host["Init"] is True
    assert host["IpcMode"] == "private"
    assert host["LogConfig"]["Type"] == "none"
    assert host["Tmpfs"] == {"/tmp": f"rw,nosuid,nodev,size={spec.limits.tmpfs_mb}m"}
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
    assert ulimits["nofile"] == (spec.limits.nofile, spec.limits.nofile)
    assert ulimits["core"] == (0, 0)
    config = inspected[0]["Config"]
    assert config["User"] == "65534:65534"
    assert config["Entrypoint"] == list(CONFINE_ENTRYPOINT)  # the image's seccomp filter
    assert config["Tty"] is False and config["OpenStdin"] is False
    assert config["Labels"][RUN_LABEL] == spec.name


def test_it_mounts_only_the_spec_mounts_and_out_with_no_labels_or_secrets(
    backend: DockerBackend,
    inspected: list[dict[str, Any]],
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", "worker-secret")
    spec = make_spec(run_dir, "innocent.py")
    backend.run(spec)
    mounts = {(m["Destination"], m["RW"]) for m in inspected[0]["Mounts"]}
    assert mounts == {("/work/submission", False), ("/out", True)}
    assert not any("label" in m["Source"] for m in inspected[0]["Mounts"])
    env = dict(item.split("=", 1) for item in inspected[0]["Config"]["Env"])
    assert set(env) == {"HOME", "PATH", "LANG"}
    assert "worker-secret" not in str(inspected[0])


def test_it_kills_a_leftover_container_of_the_same_name_first(
    backend: DockerBackend, run_dir: Path
) -> None:
    spec = make_spec(run_dir, "innocent.py")
    client = docker.from_env()
    leftover = client.containers.run(
        IMAGE, ["sleep", "600"], name=spec.name, labels={RUN_LABEL: spec.name}, detach=True
    )
    try:
        assert backend.run(spec).exit_code == 0
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(leftover.id)
    finally:
        backend.kill(spec.name)


def _sleeper(client: Any, name: str, deployment: str | None) -> Any:
    labels = {RUN_LABEL: name}
    if deployment is not None:
        labels[DEPLOYMENT_LABEL] = deployment
    return client.containers.run(IMAGE, ["sleep", "600"], name=name, labels=labels, detach=True)


def test_it_reaps_only_its_own_deployments_old_containers() -> None:
    # Issue 13, item 7: reap(older_than_seconds=1) in one test run killed another
    # deployment's running sandbox 0.14 s later. Two deployments of this test run share
    # the engine here; each reaps only its own, and nothing unlabelled.
    make_backend("docker")
    stamp = f"{os.getpid()}-{int(time.time() * 1000)}"
    mine, theirs = f"katakana-t{stamp}-a", f"katakana-t{stamp}"  # one a prefix of the other
    client = docker.from_env()
    containers = {
        "mine": _sleeper(client, f"{mine}-sub-1-a1", mine),
        "theirs": _sleeper(client, f"{theirs}-sub-1-a1", theirs),
        "unlabelled": _sleeper(client, f"{mine}-other", None),
    }
    try:
        backend = DockerBackend(deployment=mine)
        assert backend.reap(older_than_seconds=3600) == []
        time.sleep(1.1)
        assert backend.reap(older_than_seconds=1) == [f"{mine}-sub-1-a1"]
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(containers["mine"].id)
        for key in ("theirs", "unlabelled"):
            containers[key].reload()
            assert containers[key].status == "running", f"{key} was reaped"
        assert DockerBackend(deployment=theirs).reap(older_than_seconds=1) == [f"{theirs}-sub-1-a1"]
    finally:
        for container in containers.values():
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_it_lists_only_its_own_deployments_runs() -> None:
    # What the server's reaper (server/submissions/runs.py) compares with the live attempts.
    make_backend("docker")
    stamp = f"{os.getpid()}-{int(time.time() * 1000)}"
    mine, theirs = f"katakana-t{stamp}-a", f"katakana-t{stamp}"
    client = docker.from_env()
    containers = [
        _sleeper(client, f"{mine}-sub-1-a1", mine),
        _sleeper(client, f"{theirs}-sub-1-a1", theirs),
        _sleeper(client, f"{mine}-other", None),
    ]
    try:
        assert DockerBackend(deployment=mine).list_runs() == [f"{mine}-sub-1-a1"]
        assert DockerBackend(deployment=theirs).list_runs() == [f"{theirs}-sub-1-a1"]
    finally:
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_it_tells_a_kill_through_the_engine_from_a_run_that_ended_itself() -> None:
    # A `docker kill` exits 137 like learner code that SIGKILLed itself; only the engine's
    # events tell them apart, and the server asks through why_killed.
    make_backend("docker")
    stamp = f"katakana-t{os.getpid()}-{int(time.time() * 1000)}"
    client = docker.from_env()
    since = time.time()
    killed = _sleeper(client, f"{stamp}-sub-1-a1", stamp)
    itself = client.containers.run(
        IMAGE, ["sh", "-c", "kill -9 $$"], name=f"{stamp}-sub-2-a1", detach=True
    )
    try:
        killed.kill()
        itself.wait(timeout=30)
        backend = DockerBackend(deployment=stamp)
        assert backend.why_killed(f"{stamp}-sub-1-a1", since=since) == (
            "the sandbox was killed through the engine (signal 9)"
        )
        assert backend.why_killed(f"{stamp}-sub-2-a1", since=since) is None
    finally:
        for container in (killed, itself):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_its_containers_carry_the_deployment_label(
    run_dir: Path, inspected: list[dict[str, Any]]
) -> None:
    make_backend("docker")
    backend = DockerBackend(on_started=inspected.append, deployment="katakana-t-label")
    innocent_run(backend, run_dir)
    assert inspected[0]["Config"]["Labels"][DEPLOYMENT_LABEL] == "katakana-t-label"


def test_kill_of_an_unknown_name_is_a_no_op(backend: DockerBackend) -> None:
    backend.kill("katakana-test-never-existed")


def test_a_missing_image_is_an_infrastructure_error(backend: DockerBackend, run_dir: Path) -> None:
    spec = dataclasses.replace(make_spec(run_dir, "innocent.py"), image="katakana-sandbox:nope")
    with pytest.raises(InfrastructureError):
        backend.run(spec)


def test_an_unreachable_engine_is_an_infrastructure_error(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = "unix:///nonexistent/docker.sock"
    pinned = docker.DockerClient(base_url=gone, version="1.41")  # no negotiation call
    with pytest.raises(InfrastructureError):
        DockerBackend(client=pinned).run(make_spec(run_dir, "innocent.py"))
    monkeypatch.setenv("DOCKER_HOST", gone)
    with pytest.raises(InfrastructureError):
        DockerBackend()


def test_out_dir_is_writable_and_the_submission_readable_by_uid_65534(
    backend: DockerBackend, run_dir: Path
) -> None:
    result = innocent_run(backend, run_dir)  # writes /out/report.json as 65534
    assert result.exit_code == 0
