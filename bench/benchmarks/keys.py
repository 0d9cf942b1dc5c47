"""Where the suite's conftest leaves state for the test module (pytest's config stash).

The keys live in a module of their own because pytest imports ``conftest.py`` under a module name of
its choosing: keys defined there would be different objects from the ones the test module imports.
"""

import pytest

SETTINGS = pytest.StashKey()  # suite.Settings
OUTCOMES = pytest.StashKey()  # list of per-benchmark outcomes
PEAKS = pytest.StashKey()  # peak probe results
THREADS = pytest.StashKey()  # the worker-style thread configuration
