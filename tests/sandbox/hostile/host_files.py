"""B3, B4, B10: look for host files, secrets in env and /proc, identifying names."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import os
import socket


def readable(path):
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return "read"
    except OSError as exc:
        return type(exc).__name__


found = []
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/usr", "/dev")]
    found += [os.path.join(root, f) for f in files if f.endswith((".npy", ".csv", ".env"))]

environs = {}
cmdlines = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        environs[pid] = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
        cmdlines[pid] = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        pass

report = {
    "env": dict(os.environ),
    "environs": environs,
    "cmdlines": cmdlines,
    "found": found,
    "paths": {
        path: os.path.exists(path)
        for path in (
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/root/.ssh",
            "/work/main",
            "/work/1_data/test_label.npy",
            "/home/.ssh",
        )
    },
    "shadow": readable("/etc/shadow"),
    "proc1_root": sorted(os.listdir("/proc/1/root"))
    if os.access("/proc/1/root", os.R_OK)
    else None,
    "mountinfo": open("/proc/self/mountinfo").read(),
    "hostname": socket.gethostname(),
    "uid": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
    "groups": os.getgroups(),
}
json.dump(report, open("/out/report.json", "w"))
