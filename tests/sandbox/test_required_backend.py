"""The one rule for tests that need a sandbox: CI (KATAKANA_REQUIRE_DOCKER=1) fails on a
missing Docker engine or image instead of skipping the attack corpus."""

from __future__ import annotations

import pytest

from tests.sandbox import conftest


@pytest.fixture
def missing(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "docker or image katakana-sandbox:cpu unavailable (ImageNotFound)"
    monkeypatch.setitem(conftest._REASONS, "docker", reason)
    monkeypatch.setitem(conftest._REASONS, "docker-warm", reason)
    monkeypatch.setitem(conftest._REASONS, "bwrap", "bubblewrap is not installed")


@pytest.mark.parametrize("name", ["docker", "docker-warm"])
def test_a_missing_image_fails_where_docker_is_required(
    missing: None, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("KATAKANA_REQUIRE_DOCKER", "1")
    with pytest.raises(pytest.fail.Exception, match="ImageNotFound"):
        conftest.make_backend(name)


def test_a_missing_backend_is_skipped_with_its_reason_elsewhere(
    missing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KATAKANA_REQUIRE_DOCKER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="ImageNotFound"):
        conftest.make_backend("docker")
    # bubblewrap is never required: CI machines may lack user namespaces.
    monkeypatch.setenv("KATAKANA_REQUIRE_DOCKER", "1")
    with pytest.raises(pytest.skip.Exception, match="bubblewrap"):
        conftest.make_backend("bwrap")
