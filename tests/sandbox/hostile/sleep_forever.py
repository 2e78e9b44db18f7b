"""A7: read stdin (must be empty, not a terminal), then sleep forever."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import signal
import sys

data = sys.stdin.read()
json.dump(
    {"stdin": data, "isatty": [sys.stdin.isatty(), sys.stdout.isatty()]},
    open("/out/report.json", "w"),
)
signal.pause()
