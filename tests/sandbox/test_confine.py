"""The image's entrypoint (sandbox/image/confine.py) on the host: it never runs a command
it could not confine. That the filter is in force inside the sandbox is the attack suite's
part (test_b2 in test_attacks.py, for Docker cold and warm)."""

from __future__ import annotations

import pytest

from sandbox.image import confine


def test_a_filter_that_cannot_be_loaded_means_the_command_never_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    executed: list[list[str]] = []

    def broken() -> None:
        raise OSError("seccomp_load failed")

    monkeypatch.setattr(confine, "build_filter", broken)
    monkeypatch.setattr(confine.os, "execvp", lambda file, argv: executed.append(argv))
    assert confine.main(["python3", "harness.py"]) == confine.CANNOT_CONFINE
    assert executed == []
    assert "cannot load the seccomp filter" in capsys.readouterr().err


def test_it_execs_the_command_once_the_filter_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[bool] = []
    executed: list[list[str]] = []

    class Filter:
        def load(self) -> None:
            loaded.append(True)

    monkeypatch.setattr(confine, "build_filter", Filter)
    monkeypatch.setattr(confine.os, "execvp", lambda file, argv: executed.append(argv))
    confine.main(["python3", "harness.py", "--wait", "/control"])
    assert loaded == [True]
    assert executed == [["python3", "harness.py", "--wait", "/control"]]


def test_no_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert confine.main([]) == confine.CANNOT_CONFINE
    assert "no command" in capsys.readouterr().err
