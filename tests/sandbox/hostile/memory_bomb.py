"""A3: grow memory, touching every page, until something stops it."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json

json.dump({"started": True}, open("/out/report.json", "w"))
hoard = []
for _ in range(1000):  # up to 16 GB
    hoard.append(bytearray(16 << 20))
json.dump({"survived": True, "held_mb": 16 * len(hoard)}, open("/out/report.json", "w"))
