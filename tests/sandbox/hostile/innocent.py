"""Innocent control run: must succeed after (or beside) any attack."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import json

import numpy as np

json.dump({"sum": int(np.arange(10).sum())}, open("/out/report.json", "w"))
print("innocent ok")
