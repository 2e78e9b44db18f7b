"""Benchmarks run by hand; small versions run as tests.

``python -m bench`` (= ``bench sandbox``: sandboxes against the bare-process floor) and
``python -m bench web`` (leaderboard, large uploads) write ``bench/results/``;
``python -m bench.<name>`` runs another module's benchmark (e.g. ``bench.lifecycle``).
docs/benchmarks.md explains the results.
"""
