"""Template context: ``scoring_trouble``, what is wrong with scoring, for instructors' pages.

Lazy: the checks (the database and Redis) run only on a page whose template asks, which
is the instructors' navigation (``templates/courses/_nav.html``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from server.ops.health import check_workers_behind_scoring


def scoring_trouble(request: HttpRequest) -> dict[str, Any]:
    def trouble() -> dict[str, Any] | None:
        # The stalled queue has its own banner (queue_health): Redis only here.
        report = check_workers_behind_scoring()
        return None if report["sweeper_ok"] and report["sandbox_ok"] else report

    return {"scoring_trouble": SimpleLazyObject(trouble)}
