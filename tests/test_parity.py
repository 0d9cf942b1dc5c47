"""Numerical parity: every built-in implementation and mode is the same model (see bench/checks/parity.py).

Every probe is checked against the float64 NumPy oracle (bench/checks/oracle.py: the
``torch._dynamo`` rule, error <= multiple x the float32 reference's error + floor), each mode
against its own implementation's default mode, and the defaults against each other
(``parity.pairs_of`` says why this replaces all pairs). Each implementation's probes run in
their own process. Modes listed in a spec's ``known_broken`` are expected to fail the checks
that exercise training, strictly: if a framework release fixes the bug, these tests fail and
tell us to drop the entry.

Only the built-in implementations are probed here: plug-ins prove themselves with the same
checks through the pytest plug-in (tests/test_plugins.py).
"""

import itertools

import pytest

from mnist_bench.bench.checks import oracle, parity
from mnist_bench.common import registry

BUILT_IN = registry.built_in_names()
# Below fp32, each implementation's default and fastest modes: the modes people run, measured against float64.
REDUCED = [parity.ProbeConfig(b, m, p) for b in BUILT_IN if not registry.spec(b).oracle
           for p in registry.spec(b).precisions if p in ("bf16",)
           for m in dict.fromkeys([registry.default_mode(b), registry.fastest_mode(b)])]
CONFIGS = parity.with_oracle([parity.ProbeConfig(b, m) for b in BUILT_IN for m in registry.modes(b)] + REDUCED)
LABELS = [c.label for c in CONFIGS]
FP32_LABELS = [c.label for c in CONFIGS if c.precision == "fp32"]
PAIRS = parity.pairs_of(CONFIGS)
MOVERS = [c.label for c in parity.movers_of(CONFIGS)]
APPLIED = [c.label for c in REDUCED]
TRAINING_CHECKS = ("gradients", "trajectory_loss", "trajectory_weights", "roundtrip_accuracy",
                   *(f"{name}_vs_float64" for name in ("gradients", "trajectory_loss", "trajectory_weights")))


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
def probed(shared_data_dir, tmp_path_factory):
    for name in BUILT_IN:
        assert registry.is_available(name), registry.not_installed_message(name)
    work = tmp_path_factory.mktemp("parity")
    return work, parity.run_probes(CONFIGS, str(shared_data_dir), work, side_by_side=True)


@pytest.fixture(scope="module")
def checks(probed):
    return {(c["a"], c["b"], c["check"]): c for c in parity.differences(probed[1], PAIRS)}


def _assert(check):
    assert check["passed"], parity.failure_message(check)


PAIR_PARAMS = [p for name in ("forward_logits", "loss", "gradients", "trajectory_loss", "trajectory_weights")
               for p in _params(name, PAIRS)]
ORACLE_PARAMS = [p for name in oracle.CHECKS
                 for p in _params(f"{name}_vs_float64", [(label, oracle.ORACLE) for label in LABELS
                                                           if label != oracle.ORACLE])]


@pytest.mark.parametrize("name,a,b", ORACLE_PARAMS)
def test_against_float64(checks, name, a, b):
    _assert(checks[(a, b, name)])


@pytest.mark.parametrize("name,a,b", PAIR_PARAMS)
def test_pair(checks, name, a, b):
    _assert(checks[(a, b, name)])


@pytest.mark.parametrize("name,a,b", _params("roundtrip_accuracy", parity.roundtrip_pairs(MOVERS)))
def test_weight_roundtrip_accuracy(checks, name, a, b):
    _assert(checks[(a, b, name)])


@pytest.mark.parametrize("label", APPLIED)
def test_a_reduced_precision_run_computes_in_that_precision(checks, label):
    _assert(checks[(label, oracle.ORACLE, "precision_applied")])


@pytest.mark.parametrize("label", LABELS)
def test_export_is_exact(checks, label):
    _assert(checks[(label, label, "export_identity")])


def test_every_check_was_made(checks):
    n, m = len(LABELS), len(MOVERS)
    assert len(checks) == n + 5 * len(PAIRS) + 2 * (m - 1) + len(oracle.CHECKS) * (n - 1) + len(APPLIED)


def test_pairs_cover_every_mode_and_every_implementation():
    # Each non-default mode is paired with its own default; every two implementations' defaults are paired.
    defaults = {f"{b}-{registry.default_mode(b)}" for b in BUILT_IN}
    for label in set(FP32_LABELS) - defaults - {oracle.REFERENCE}:
        assert any(label in pair and (set(pair) - {label}) <= defaults for pair in PAIRS), label
    cross = sorted(d for d in defaults if d != oracle.ORACLE)
    assert {tuple(sorted(p)) for p in itertools.combinations(cross, 2)} <= {tuple(sorted(p)) for p in PAIRS}


def test_the_oracle_rule_catches_a_lower_precision_and_a_wrong_model():
    # The rule must fail a computation that is less exact than float32 allows, not only a wrong one.
    import numpy as np

    rng = np.random.default_rng(0)
    exact = {"logits": rng.normal(size=(8, 10)), "loss": np.float64(2.3), "losses": rng.normal(size=60) + 2,
             "g/w": rng.normal(size=(5, 5)), "final/w": rng.normal(size=(5, 5))}

    def rounded(dtype):
        return {k: np.asarray(v).astype(dtype).astype(np.float64) for k, v in exact.items()}

    results = {oracle.ORACLE: exact, oracle.REFERENCE: rounded(np.float32), "same-float32": rounded(np.float32),
               "half-precision": rounded(np.float16),
               "wrong-model": {**rounded(np.float32), "logits": exact["logits"][:, ::-1]}}
    verdicts = {(c["a"], c["check"]): c["passed"] for c in oracle.against_oracle(results)}
    assert all(verdicts[("same-float32", f"{name}_vs_float64")] for name in oracle.CHECKS)
    assert not verdicts[("half-precision", "forward_logits_vs_float64")]
    assert not verdicts[("half-precision", "gradients_vs_float64")]
    assert not verdicts[("wrong-model", "forward_logits_vs_float64")]
    message = parity.failure_message(next(c for c in oracle.against_oracle(results)
                                          if c["a"] == "wrong-model" and not c["passed"]))
    assert "forward_logits_vs_float64 wrong-model" in message and "float32 reference" in message


def test_the_bf16_rule_catches_a_lower_precision_layer_and_a_bf16_loss(probed):
    # Faults planted in PyTorch's bf16 run (tests/planted_precision.py), judged against the same float64 oracle
    # and bf16 reference as every framework above.
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    import planted_precision

    work, results = probed
    proc = subprocess.run([sys.executable, str(Path(planted_precision.__file__)), str(work / "inputs.npz"),
                           str(work / "planted")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    planted = {label: dict(np.load(work / "planted" / f"{label}.npz")) for label in planted_precision.LABELS}
    bf16 = oracle.reference("bf16")
    judged = oracle.against_oracle({oracle.ORACLE: results[oracle.ORACLE], bf16: results[bf16], **planted})
    failed = {(c["a"], c["check"]) for c in judged if not c["passed"]}
    fp8, loss = planted_precision.LABELS
    assert (fp8, "forward_logits_vs_float64") in failed, judged
    assert (loss, "loss_vs_float64") in failed, judged
    assert (loss, "forward_logits_vs_float64") not in failed, "the loss plant must not change the logits"


def test_only_the_oracle_moves_no_weights():
    # `mnist-bench parity --backends numpy` probes the float64 oracle and its float32 reference alone.
    configs = parity.with_oracle([])
    assert parity.movers_of(configs) == [] and parity.roundtrip_pairs([]) == []
    assert parity.roundtrip_pairs(["a-x", "b-y", "c-z"]) == [("b-y", "a-x"), ("a-x", "b-y"), ("c-z", "a-x"), ("a-x", "c-z")]
