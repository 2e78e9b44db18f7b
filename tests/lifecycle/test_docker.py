"""The Docker engine failing under a run: retried as our fault, never charged, no orphan.

dockerd is shared on this machine, so it is not restarted. A restart does two things to
a worker, and each is reproduced for this session's containers only:

* the sandbox dies under the run: ``docker kill`` of the running container. Its exit
  (137, no result.json) looks exactly like learner code that SIGKILLed itself, so the
  test submits both and checks that only the learner's own kill is a charged verdict;
* the engine's API is unreachable: the worker talks to Docker through a TCP proxy
  (DOCKER_HOST=tcp://...) that the test stops and starts. A worker whose engine is down
  claims nothing (no attempt burned); a run whose engine vanishes mid-run is retried
  when it is back, and the earlier attempt's container is killed before the retry.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.lifecycle import chaos
from tests.workers import RUN_PREFIX, celery_worker, require_docker, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _container_running(submission) -> str | None:  # type: ignore[no-untyped-def]
    name = f"{RUN_PREFIX}-sub-{submission.pk}-a1"
    out = subprocess.run(
        ["docker", "ps", "--filter", f"name=^{name}$", "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return name if out else None


@pytest.fixture
def docker_lifecycle(lifecycle):  # type: ignore[no-untyped-def]
    require_docker()
    lifecycle.settings.KATAKANA_SANDBOX_BACKEND = "docker"
    return lifecycle


def test_a_container_killed_through_the_engine_is_retried_not_charged(docker_lifecycle) -> None:  # type: ignore[no-untyped-def]
    from server.submissions.models import Status

    life = docker_lifecycle
    killed = life.submit(sleep=6)
    selfkill = life.submit(selfkill=True)
    with celery_worker(life.tmp, env=life.env(KATAKANA_SANDBOX_BACKEND="docker"), name="a"):
        wait_until(lambda: _container_running(killed), timeout=60, message="the container")
        time.sleep(1)
        subprocess.run(
            ["docker", "kill", _container_running(killed)], check=True, capture_output=True
        )
        wait_until(life.all_terminal, timeout=90, message="all terminal")
        wait_until(life.emails_sent, timeout=30, message="all emails")

    killed.refresh_from_db()
    assert killed.status == Status.SCORED, (killed.error_code, killed.detail)
    assert killed.attempts == 2 and killed.charged
    selfkill.refresh_from_db()
    assert (selfkill.status, selfkill.error_code, selfkill.charged) == (
        Status.FAILED,
        "crashed",
        True,
    )
    assert selfkill.attempts == 1
    life.assert_settled()


def test_an_unreachable_engine_burns_no_attempt_and_a_run_it_drops_is_retried(
    docker_lifecycle,
) -> None:  # type: ignore[no-untyped-def]
    from server.submissions.models import Status

    life = docker_lifecycle
    engine = chaos.TcpProxy("/var/run/docker.sock")
    env = life.env(KATAKANA_SANDBOX_BACKEND="docker", DOCKER_HOST=f"tcp://127.0.0.1:{engine.port}")
    waiting = life.submit()
    try:
        with celery_worker(life.tmp, env=env, name="a"):
            # Engine down from the start: the message comes and goes, nothing is claimed.
            wait_until(
                lambda: "handing the message back" in (life.tmp / "worker-a.log").read_text(),
                timeout=40,
            )
            time.sleep(2)
            waiting.refresh_from_db()
            assert (waiting.status, waiting.attempts) == (Status.QUEUED, 0)
            engine.start()
            wait_until(life.all_terminal, timeout=60, message="scored once the engine is back")

            # Engine gone mid-run: the attempt fails as ours; the retry kills its container.
            dropped = life.submit(sleep=6)
            wait_until(lambda: _container_running(dropped), timeout=60, message="the container")
            engine.stop()
            time.sleep(3)
            engine.start()
            wait_until(life.all_terminal, timeout=90, message="all terminal")
            wait_until(life.emails_sent, timeout=30, message="all emails")
    finally:
        engine.stop()

    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts) == (Status.SCORED, 1)
    dropped.refresh_from_db()
    assert dropped.status == Status.SCORED, (dropped.error_code, dropped.detail)
    assert dropped.attempts == 2 and dropped.charged
    life.assert_settled()
