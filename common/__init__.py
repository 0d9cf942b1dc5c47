"""Framework-neutral pieces shared by every backend: data, recipe, weights, metrics, records.

Nothing in this package imports a deep-learning framework, at import time or
later; backends import their framework inside their own worker process.
"""
