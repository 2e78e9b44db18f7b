"""A11: open pipes until the nofile limit refuses."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import errno
import json
import os

fds = []
error = None
while len(fds) < 100000:
    try:
        fds.extend(os.pipe())
    except OSError as exc:
        error = errno.errorcode.get(exc.errno, exc.errno)
        break
json.dump({"fds": len(fds), "errno": error}, open("/out/report.json", "w"))
