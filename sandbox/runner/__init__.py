"""The trusted in-sandbox harness, mounted read-only at ``/harness``.

Nothing in this folder imports our packages: it runs with the sandbox image's python.
The constants here are for host-side code that stages files or builds commands.
"""

from pathlib import Path

RUNNER_DIR = Path(__file__).resolve().parent
HARNESS = RUNNER_DIR / "harness.py"
# Copied over the learner's util.py before a legacy-contract run.
LEGACY_UTIL = RUNNER_DIR / "legacy_util.py"
