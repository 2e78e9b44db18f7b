"""Issue 13, item 6: every course limit is clamped by the operator's ceilings.

``KATAKANA_SANDBOX_MEMORY_MB`` was read by nothing: a course setting of 64 GiB gave a
sandbox a 64 GiB limit on a 23 GiB host. The settings page refuses more than the ceiling
and says so; a row saved earlier (or through the admin) is clamped when a run starts,
which the real Docker engine reports back."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from sandbox.base import Mount, RunSpec
from sandbox.docker_backend import DockerBackend
from server.submissions.scoring import score_config
from tests.factories import make_submission
from tests.sandbox.conftest import IMAGE, require_backend


def _login(client, user, language="en"):  # type: ignore[no-untyped-def]
    user.language = language
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def _settings_post(**changes: Any) -> dict[str, Any]:
    data = {
        "daily_quota": 3,
        "max_in_flight": 1,
        "pass_threshold": 0.98,
        "wall_seconds": 300,
        "memory_mb": 2048,
        "opens_at": "",
        "closes_at": "",
        "time_zone": "Asia/Tokyo",
    }
    data.update(changes)
    return data


def test_the_settings_page_refuses_memory_above_the_operators_ceiling_and_says_so(
    client, course, instructor, settings
):  # type: ignore[no-untyped-def]
    settings.KATAKANA_SANDBOX_MEMORY_MB = 3072
    url = reverse("course_settings", args=[course.code])
    page = _login(client, instructor).get(url).content.decode()
    assert "At most 3072 MB: the server&#x27;s own limit." in page
    response = client.post(url, _settings_post(memory_mb=65536))
    assert response.status_code == 200
    assert "Choose between 256 and 3072 MB." in response.context["form"].errors["memory_mb"]
    course.refresh_from_db()
    assert course.memory_mb != 65536


def test_the_ceiling_is_stated_in_japanese(client, course, instructor, settings):  # type: ignore[no-untyped-def]
    settings.KATAKANA_SANDBOX_MEMORY_MB = 3072
    page = _login(client, instructor, "ja").get(reverse("course_settings", args=[course.code]))
    assert "3072 MB" in page.content.decode()
    assert "At most" not in page.content.decode()


def test_a_course_limit_above_the_ceiling_is_clamped_in_the_real_container(
    course, learner, settings
):  # type: ignore[no-untyped-def]
    require_backend("docker")
    settings.KATAKANA_SANDBOX_MEMORY_MB = 512
    settings.KATAKANA_WALL_SECONDS = 20
    course.memory_mb, course.wall_seconds = 65536, 600  # as the admin or an old row has it
    course.save(update_fields=["memory_mb", "wall_seconds"])
    inspected: list[dict[str, Any]] = []
    backend = DockerBackend(on_started=inspected.append)
    limits = score_config(make_submission(course, learner, status="queued"), backend).limits
    assert (limits.memory_mb, limits.wall_seconds) == (512, 20.0)
    with tempfile.TemporaryDirectory(prefix="kr-") as tmp:
        (Path(tmp) / "submission").mkdir()
        spec = RunSpec(
            name=f"{settings.KATAKANA_RUN_PREFIX}-ceiling-{Path(tmp).name[3:]}",
            image=IMAGE,
            command=["python3", "-c", "print('ok')"],
            workdir="/work/submission",
            mounts=[Mount(Path(tmp) / "submission", "/work/submission")],
            out_dir=Path(tmp) / "out",
            limits=limits,
        )
        result = backend.run(spec)
    host_config = inspected[0]["HostConfig"]
    print(f"memory limit in the container: {host_config['Memory'] >> 20} MiB (course: 65536)")
    assert host_config["Memory"] == 512 << 20
    assert host_config["MemorySwap"] == 512 << 20
    assert result.exit_code == 0


@pytest.mark.parametrize("memory_mb", [256, 4096, 65536])
def test_the_learners_course_page_shows_the_limit_a_run_gets(
    client, course, learner, settings, memory_mb
):  # type: ignore[no-untyped-def]
    settings.KATAKANA_SANDBOX_MEMORY_MB = 4096
    course.memory_mb = memory_mb
    course.save(update_fields=["memory_mb"])
    page = _login(client, learner).get(reverse("course", args=[course.code])).content.decode()
    assert f"memory {min(memory_mb, 4096)} MB" in page
