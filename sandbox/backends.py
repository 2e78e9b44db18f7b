"""Pick a sandbox backend by name: ``docker`` (production), ``docker-warm``, ``bwrap``,
``process``.

Imports are lazy so that a learner's machine running ``process`` needs neither the
docker SDK nor bubblewrap. ``docker-warm`` is one instance per process (its pool of
pre-started containers must outlive a single task), created on first use; it starts
no container until its first run.
"""

from __future__ import annotations

import threading
from typing import Any

from sandbox.base import SandboxBackend

BACKEND_NAMES = ("docker", "docker-warm", "bwrap", "process")
_WARM: dict[tuple[tuple[str, Any], ...], SandboxBackend] = {}
_WARM_LOCK = threading.Lock()


def get_backend(name: str, **options: Any) -> SandboxBackend:
    """Build the backend ``name`` with its constructor ``options``.

    ``bwrap`` without a ``rootfs`` option uses the rootfs of the current image recipe
    (``python -m sandbox.image build`` creates it).
    """
    if name == "docker":
        from sandbox.docker_backend import DockerBackend

        return DockerBackend(**options)
    if name == "docker-warm":
        from sandbox.warm import WarmDockerBackend

        key = tuple(sorted(options.items()))
        with _WARM_LOCK:
            if key not in _WARM:
                _WARM[key] = WarmDockerBackend(**options)
            return _WARM[key]
    if name == "bwrap":
        from sandbox.bwrap_backend import BwrapBackend

        if "rootfs" not in options:
            from sandbox.image.build import rootfs_path

            options["rootfs"] = rootfs_path()
        return BwrapBackend(**options)
    if name == "process":
        from sandbox.process_backend import ProcessBackend  # type: ignore[import-not-found]

        return ProcessBackend(**options)  # type: ignore[no-any-return]
    raise ValueError(f"unknown sandbox backend {name!r}; choose one of {BACKEND_NAMES}")
