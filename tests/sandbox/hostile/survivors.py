"""A14 and A15: leave a double-forked, setsid'ed survivor and a zombie flood, exit 0."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import os
import subprocess
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(600)  # the grandchild: keeps the token in its argv
    os._exit(0)
# A detached `sleep` with a recognisable argument (no token: it is another program).
subprocess.Popen(["sleep", "987654"], start_new_session=True)
zombies = 0
for _ in range(30):  # children that exit and are never waited for
    if os.fork() == 0:
        os._exit(0)
    zombies += 1
json.dump({"zombies": zombies}, open("/out/report.json", "w"))
