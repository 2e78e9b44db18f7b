"""Scoring pipeline: archive intake, entry detection, sandbox orchestration, metrics.

Plain Python, no Django: ``server/`` calls ``scorer.pipeline.score_zip`` and stores
what it returns; ``python -m scorer`` runs the same path on a learner's machine.
"""
