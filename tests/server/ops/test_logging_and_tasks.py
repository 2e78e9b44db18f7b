"""The JSON log formatter and the whoami diagnostic task (run in process)."""

from __future__ import annotations

import json
import logging
import secrets

from server.ops.broker import broker_redis
from server.ops.logging import JsonFormatter
from server.ops.tasks import reply_key, whoami


def test_json_formatter_writes_one_object_with_extras_and_the_traceback() -> None:
    logger = logging.getLogger("katakana.test")
    try:
        raise RuntimeError("GPU lost")
    except RuntimeError:
        record = logger.makeRecord(
            "katakana.test",
            logging.ERROR,
            __file__,
            1,
            "submission %s failed",
            (42,),
            exc_info=__import__("sys").exc_info(),
            extra={"submission_id": 42, "gpu": "GPU-x"},
        )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "submission 42 failed" and entry["level"] == "ERROR"
    assert entry["submission_id"] == 42 and entry["gpu"] == "GPU-x"
    assert "RuntimeError: GPU lost" in entry["exc"]
    assert entry["ts"].endswith("+00:00")


def test_json_formatter_keeps_the_line_when_a_value_is_not_json(settings) -> None:
    record = logging.makeLogRecord({"msg": "ケ", "levelname": "INFO", "path": object()})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "ケ" and entry["path"].startswith("<object")


def test_whoami_records_the_workers_gpus_in_redis(settings) -> None:
    settings.KATAKANA_GPUS = ["GPU-aaaa"]
    reply_id = secrets.token_hex(6)
    whoami.apply(args=[reply_id])
    raw = broker_redis().lpop(reply_key(reply_id))
    assert json.loads(raw)["gpus"] == ["GPU-aaaa"]
