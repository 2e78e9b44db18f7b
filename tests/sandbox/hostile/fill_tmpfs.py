"""A4 and A10: fill /tmp and /dev/shm until ENOSPC; write to read-only places."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import errno
import json
import os


def fill(directory):
    written, chunk = 0, b"\0" * (1 << 20)
    try:
        with open(os.path.join(directory, "fill"), "wb") as handle:
            while written < (4 << 30):
                handle.write(chunk)
                handle.flush()
                written += len(chunk)
    except OSError as exc:
        return {"written": written, "errno": errno.errorcode.get(exc.errno, exc.errno)}
    return {"written": written, "errno": None}


def try_write(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
    except OSError as exc:
        return errno.errorcode.get(exc.errno, exc.errno)
    return "written"


report = {"tmp": fill("/tmp"), "shm": fill("/dev/shm")}
os.remove("/tmp/fill")
os.remove("/dev/shm/fill")
report["write"] = {
    path: try_write(path)
    for path in ("/evil", "/usr/evil", "/etc/evil", "/work/submission/evil", "/harness/evil")
}
# One huge file in /out (a host directory): stopped by the per-file size cap.
report["out"] = fill("/out")
os.remove("/out/fill")
json.dump(report, open("/out/report.json", "w"))
