"""``python -m sandbox.image prune``: older recipes go, the current one and the newest
previous one stay (a run may still be using it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sandbox.image import build as recipe
from tests.sandbox.conftest import IMAGE, require_backend


def test_it_removes_older_root_filesystems_but_the_current_and_newest_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KATAKANA_CACHE", str(tmp_path))
    current = recipe.rootfs_path()
    for age, path in enumerate(
        [current, tmp_path / "rootfs-newer", tmp_path / "rootfs-older", tmp_path / "rootfs-oldest"]
    ):
        path.mkdir()
        os.utime(path, (1_700_000_000 - age * 1000, 1_700_000_000 - age * 1000))
    (tmp_path / "rootfs-building.partial").mkdir()  # a build in progress is never touched
    monkeypatch.setattr(recipe.shutil, "which", lambda name: None)  # folders only here

    removed = recipe.prune(keep=1)

    assert sorted(Path(p).name for p in removed) == ["rootfs-older", "rootfs-oldest"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([current.name, "rootfs-newer", "rootfs-building.partial"])


@pytest.mark.docker
def test_it_untags_older_recipe_images_but_the_current_and_newest_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_backend("docker")
    monkeypatch.setenv("KATAKANA_CACHE", str(tmp_path))
    repo = "katakana-prune-test"
    tags = [f"cpu-{recipe.content_hash()}", "cpu-000000000000000b", "cpu-000000000000000a"]
    for tag in tags:
        subprocess.run(["docker", "tag", IMAGE, f"{repo}:{tag}"], check=True)
    try:
        removed = recipe.prune(keep=1, repo=repo)
        left = subprocess.run(
            ["docker", "images", repo, "--format", "{{.Tag}}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert removed == [f"{repo}:cpu-000000000000000a"]
        assert sorted(left) == sorted(tags[:2])
        # The image itself is untouched: only a tag went.
        assert (
            subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode
            == 0
        )
    finally:
        for tag in tags:
            subprocess.run(["docker", "rmi", f"{repo}:{tag}"], capture_output=True)
