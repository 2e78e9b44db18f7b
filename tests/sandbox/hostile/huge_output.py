"""A9: 64 MiB to stdout and 64 MiB to stderr, then exit 0."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import sys

line = "x" * (1 << 20)
for _ in range(64):
    sys.stdout.write(line)
    sys.stderr.write(line)
sys.stdout.flush()
sys.stderr.flush()
json.dump({"done": True}, open("/out/report.json", "w"))
