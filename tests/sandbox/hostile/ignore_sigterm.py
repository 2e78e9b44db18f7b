"""A8: ignore SIGTERM (and SIGINT, SIGHUP) and keep running."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import signal
import time

for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
json.dump({"ignoring": True}, open("/out/report.json", "w"))
while True:
    time.sleep(0.1)
