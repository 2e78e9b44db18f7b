"""deploy/compose.yaml: parses, and holds the properties the deployment relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ONE_SHOT = {"migrate"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def gpu_workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(compose).items() if name.startswith("worker-gpu")}


def test_every_long_running_service_has_a_health_check_and_rotated_logs(compose) -> None:
    for name, service in services(compose).items():
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(logging["options"]), name
        if name not in ONE_SHOT:
            assert service["healthcheck"]["test"], name


def test_redis_keeps_its_queue_refuses_eviction_and_needs_a_password(compose) -> None:
    redis = services(compose)["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "requirepass" in command
    assert redis["volumes"] == ["redis:/data"]
    assert "@redis:6379" in compose["x-app-env"]["CELERY_BROKER_URL"]
    assert ":${REDIS_PASSWORD" in compose["x-app-env"]["CELERY_BROKER_URL"]


def test_each_gpu_worker_owns_one_gpu_and_its_own_queue(compose) -> None:
    workers = gpu_workers(compose)
    assert len(workers) >= 2
    for name, worker in workers.items():
        n = name.removeprefix("worker-gpu")
        queues = re.search(r"-Q (\S+)", worker["command"]).group(1).split(",")
        assert f"score-gpu{n}" in queues
        assert re.search(r"-c 1\b", worker["command"]), "one run per GPU at a time"
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1 and len(devices[0]["device_ids"]) == 1
        assert devices[0]["device_ids"][0] == worker["environment"]["KATAKANA_GPUS"]
        assert "gpu" in devices[0]["capabilities"]
        assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]
        assert worker["profiles"] == ["gpu"]
    own_queues = [re.search(r"score-gpu\d+", w["command"]).group(0) for w in workers.values()]
    assert len(set(own_queues)) == len(own_queues)


def test_paths_a_sandbox_mounts_are_the_same_on_the_host_and_in_the_worker(compose) -> None:
    volumes = compose["volumes"]
    worker_mounts = services(compose)["worker-gpu0"]["volumes"]
    for name in ("testsets", "runs", "harness", "submissions"):
        device = volumes[name]["driver_opts"]["device"]
        target = next(m.split(":")[1] for m in worker_mounts if m.startswith(f"{name}:"))
        assert device == target == f"/srv/katakana/{name}"


def test_optional_services_sit_behind_their_profiles(compose) -> None:
    assert services(compose)["mailpit"]["profiles"] == ["staging"]
    assert services(compose)["flower"]["profiles"] == ["ops"]
    for name in ("web", "worker", "beat", "redis", "postgres", "caddy", "backup"):
        assert "profiles" not in services(compose)[name], name


def test_only_caddy_is_published_beyond_the_private_bind(compose) -> None:
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            if name != "caddy":
                assert port.startswith(("127.0.0.1:", "${KATAKANA_PRIVATE_BIND")), (name, port)


@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu-host.yaml"])
def test_every_variable_compose_reads_is_documented_in_env_example(name: str) -> None:
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", (DEPLOY / name).read_text()))
    documented = set(
        re.findall(r"^#?\s*([A-Z0-9_]+)=", (DEPLOY / ".env.example").read_text(), re.M)
    )
    assert used - documented == set()


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.skipif(_compose_cli() is None, reason="neither docker compose nor docker-compose")
@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu-host.yaml"])
def test_compose_config_accepts_the_file_with_every_profile(name: str, tmp_path: Path) -> None:
    cli = _compose_cli()
    text = (DEPLOY / name).read_text()
    if cli == ["docker-compose"]:
        # Compose v1 predates the top-level "name" key; everything else it validates.
        text = re.sub(r"^name: .*\n", "", text, flags=re.M)
    (tmp_path / "compose.yaml").write_text(text)
    (tmp_path / ".env").write_text(
        "POSTGRES_PASSWORD=p\nREDIS_PASSWORD=r\nKATAKANA_DOMAIN=scoring.example.ac.jp\n"
        "KATAKANA_HOST_TAG=gpuhost1\n"
    )
    done = subprocess.run(
        [*cli, "--profile", "gpu", "--profile", "ops", "--profile", "staging", "config", "-q"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
