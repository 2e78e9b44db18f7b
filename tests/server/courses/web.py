"""Builders for web tests: real zips (submission rows come from ``tests.factories``)."""

from __future__ import annotations

import io
import json
import zipfile

PREDICT_CELL = """\
import numpy as np


def predict(test_data):
    return np.zeros(len(test_data), dtype=np.int64)
"""


def notebook_zip(cell: str = PREDICT_CELL, top: str = "submit_folder") -> bytes:
    """A small, valid verified-contract submission zip (notebook defining predict)."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": cell.splitlines(keepends=True),
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 2,
    }
    buffer = io.BytesIO()
    # A fixed timestamp: two calls must give the same bytes (writestr with a bare name
    # stamps the current time, which differed when a test crossed a 2-second tick).
    info = zipfile.ZipInfo(f"{top}/submit_katakana.ipynb", (2024, 4, 1, 0, 0, 0))
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, json.dumps(notebook))
    return buffer.getvalue()
