"""A JSON log formatter: one object per line, for log shippers (KATAKANA_LOG_FORMAT=json).

Fields: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``process``, and when
present ``exc`` (the formatted traceback), the Celery ``task_id``/``task_name`` of the task
being run, and any ``extra={...}`` values the caller passed. Values that JSON cannot
represent are written with ``repr`` rather than dropping the line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        entry.update(_current_task())
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return json.dumps(entry, ensure_ascii=False, default=repr)


def _current_task() -> dict[str, str]:
    try:
        from celery._state import get_current_task
    except ImportError:  # pragma: no cover - celery is a dependency, but keep logging alive
        return {}
    task = get_current_task()
    if task is None or task.request.id is None:
        return {}
    return {"task_id": task.request.id, "task_name": task.name}
