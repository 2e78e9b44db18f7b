"""A1: fork until the pids limit refuses; children sleep so they count."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import os
import time

children = 0
error = None
while children < 5000:
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.errno
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    children += 1
json.dump({"children": children, "errno": error}, open("/out/report.json", "w"))
