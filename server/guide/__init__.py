"""The learner guide page (``/guide/``): packaging, contracts, error classes, quota, local check."""
