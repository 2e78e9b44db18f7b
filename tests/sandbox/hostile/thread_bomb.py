"""A2: start threads until the pids limit refuses (threads are tasks too)."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import threading
import time

started = 0
error = None
while started < 5000:
    try:
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    except RuntimeError as exc:
        error = str(exc)
        break
    started += 1
json.dump({"threads": started, "error": error}, open("/out/report.json", "w"))
