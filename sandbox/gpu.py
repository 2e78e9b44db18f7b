"""GPU discovery and health checks through ``nvidia-smi``.

A GPU that does not answer (driver gone, Xid after a hung kernel, "Failed to initialize
NVML" after a daemon reload) is an infrastructure fault: the run is retried elsewhere and
the learner is not charged. ``list_gpus`` returns UUIDs because Docker's ``--gpus device=``
must be given UUIDs, not indexes, to stay stable across reboots.
"""

from __future__ import annotations

import shutil
import subprocess

from sandbox.base import InfrastructureError

NVIDIA_SMI_TIMEOUT_SECONDS = 20.0


def list_gpus() -> list[str]:
    """UUIDs of the GPUs on this host; ``[]`` when there is no GPU or no driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("GPU-")]


def gpu_health(gpu: str) -> None:
    """Raise ``InfrastructureError`` unless the GPU (UUID or index) answers sanely."""
    if shutil.which("nvidia-smi") is None:
        raise InfrastructureError("nvidia-smi is not installed: no usable GPU driver")
    query = "uuid,memory.used,memory.total,ecc.errors.uncorrected.volatile.total"
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--id={gpu}", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise InfrastructureError(f"nvidia-smi hung on GPU {gpu}") from exc
    except OSError as exc:
        raise InfrastructureError(f"nvidia-smi failed: {exc}") from exc
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip()[:500]
        raise InfrastructureError(f"GPU {gpu} is not healthy: {reason}")
    fields = [field.strip() for field in done.stdout.strip().split(",")]
    if len(fields) != 4 or not fields[0].startswith("GPU-"):
        raise InfrastructureError(f"GPU {gpu}: unexpected nvidia-smi answer {done.stdout!r}")
    ecc_errors = fields[3]
    # "[N/A]" on GPUs without ECC; a positive count means the memory is corrupt.
    if ecc_errors.isdigit() and int(ecc_errors) > 0:
        raise InfrastructureError(f"GPU {gpu} reports {ecc_errors} uncorrected ECC errors")
