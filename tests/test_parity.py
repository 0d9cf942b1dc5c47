"""Numerical parity: every backend and mode is the same model (see bench/checks/parity.py).

Every pair of (backend, mode) is checked; each backend's probes run in their own
process. Tolerances and the measurements behind them live in
``mnist_bench.bench.checks.parity.TOLERANCES``. Modes listed in a spec's ``known_broken`` are
expected to fail the checks that exercise training, strictly: if a framework
release fixes the bug, these tests fail and tell us to drop the entry.
"""

import itertools

import pytest

from mnist_bench.bench.checks import parity
from mnist_bench.common import registry

CONFIGS = [parity.ProbeConfig(b, m) for b in registry.names() for m in registry.modes(b)]
LABELS = [c.label for c in CONFIGS]
PAIRS = list(itertools.combinations(LABELS, 2))
MOVERS = [f"{b}-{registry.default_mode(b)}" for b in registry.names()]
TRAINING_CHECKS = ("gradients", "trajectory_loss", "trajectory_weights", "roundtrip_accuracy")


def _broken(*labels):
    for c in CONFIGS:
        if c.label in labels and registry.known_broken(c.backend, c.mode, "cpu"):
            return registry.known_broken(c.backend, c.mode, "cpu")
    return None


def _params(name, pairs):
    out = []
    for a, b in pairs:
        reason = _broken(a, b) if name in TRAINING_CHECKS else None
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(name, a, b, marks=marks, id=f"{name}-{a}-{b}"))
    return out


@pytest.fixture(scope="module")
def checks(shared_data_dir, tmp_path_factory):
    for name in registry.names():
        assert registry.is_available(name), registry.not_installed_message(name)
    results = parity.run_probes(CONFIGS, str(shared_data_dir), tmp_path_factory.mktemp("parity"))
    return {(c["a"], c["b"], c["check"]): c for c in parity.differences(results)}


def _assert(check):
    tol = parity.TOLERANCES[check["check"]]
    assert check["passed"], (
        f"{check['check']} {check['a']} vs {check['b']}: difference {check['max_abs_diff']:.3e} "
        f"exceeds {check['tolerance']:.1e} ({tol.why}; measured at most {tol.measured:.1e} when set)"
    )


PAIR_PARAMS = [p for name in ("forward_logits", "loss", "gradients", "trajectory_loss", "trajectory_weights")
               for p in _params(name, PAIRS)]


@pytest.mark.parametrize("name,a,b", PAIR_PARAMS)
def test_pair(checks, name, a, b):
    _assert(checks[(a, b, name)])


@pytest.mark.parametrize("name,a,b", _params("roundtrip_accuracy", itertools.permutations(MOVERS, 2)))
def test_weight_roundtrip_accuracy(checks, name, a, b):
    _assert(checks[(a, b, name)])


@pytest.mark.parametrize("label", LABELS)
def test_export_is_exact(checks, label):
    _assert(checks[(label, label, "export_identity")])


def test_every_check_was_made(checks):
    n, m = len(LABELS), len(MOVERS)
    assert len(checks) == n + 5 * len(PAIRS) + m * (m - 1)
