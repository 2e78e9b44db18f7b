"""A5 and A6: spin the CPU in the main process and in several children."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import os

json.dump({"started": True}, open("/out/report.json", "w"))
for _ in range(3):
    if os.fork() == 0:
        break
while True:
    pass
