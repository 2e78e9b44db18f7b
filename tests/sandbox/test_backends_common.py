"""Behaviour every isolating backend shares, run against Docker and bubblewrap alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sandbox.base import SandboxBackend
from tests.sandbox.conftest import make_spec


def test_it_separates_streams_and_reports_the_exit_code(
    backend: SandboxBackend, run_dir: Path
) -> None:
    spec = dataclasses.replace(
        make_spec(run_dir, "innocent.py"),
        command=[
            "python3",
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); exit(7)",
        ],
    )
    result = backend.run(spec)
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    assert result.backend == backend.name
    assert result.image_digest.startswith("sha256:" if backend.name == "docker" else "rootfs:")
