"""A burst of 30 uploads on one host: 30 results, 30 emails, no orphan, learners take turns.

The small version of ``python -m bench.lifecycle --n 300`` (real worker with beat, process
sandboxes). Ten learners upload three each, every learner's three in a row, before the
worker starts: the claim order alone serves all ten learners before anyone's second
(first in, first out would have served the first learner three times first).
"""

from __future__ import annotations

import pytest

from bench.lifecycle import run_burst

pytestmark = pytest.mark.slow


def test_a_burst_of_30_ends_with_30_results_30_emails_and_no_orphan(lifecycle) -> None:  # type: ignore[no-untyped-def]
    report = run_burst(n=30, learners=10, tmp=lifecycle.tmp, timeout=120, upload_first=True)
    print("\n".join(report.lines()))
    assert report.results == 30 and report.statuses == {"scored": 30}
    assert report.outbox_rows == 30 and report.emails_sent == 30
    assert report.orphans == []
    assert report.attempts_over_one == 0
    assert report.first_round_learners == 10
