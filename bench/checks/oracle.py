"""Parity against the float64 oracle: whose rounding drifts, and by how much.

Pairwise checks say that two implementations agree; they cannot say which one is right, and a
fixed bound (the old 5e-4 on a 60-step trajectory) is a guess. Every probe is therefore also
measured against the NumPy implementation in float64 (``numpy-float64``), with the rule
``torch._dynamo``'s accuracy checker uses::

    error(candidate vs float64) <= MULTIPLE * error(reference vs float64) + floor

where the reference is the same oracle computed in float32 (``numpy-float32``): the error any
float32 computation of this model is entitled to, with no framework in it. Each floor and the
multiple were set from the measurements written next to them.

Below fp32 the same rule holds with the reference in that precision: ``numpy-float32-bf16`` is the
oracle's code in float32 arithmetic with every convolution's and matmul's operands and result rounded
to bfloat16 where the frameworks round them (backends/numpy_backend/model.py, ``Rounding``), so a
framework's bf16 run must be as close to float64 as bf16 allows, with its own multiple and floors
(:data:`RULES`). Being that close is not enough: a run asked for bf16 that computed in float32 would
pass too, so :func:`against_oracle` also requires its forward error to be at least
``APPLIED_FRACTION`` of the reference's (``precision_applied``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_bench.bench.checks.probe import COMPARED, difference
from mnist_bench.common import precision as numeric

ORACLE = "numpy-float64"
REFERENCE = "numpy-float32"
ORACLE_BACKEND = "numpy"


def reference(precision: str) -> str:
    """The label of the oracle's run in ``precision``: float32 arithmetic, rounded as that precision rounds."""
    return REFERENCE if precision == numeric.DEFAULT else f"{REFERENCE}-{precision}"

# torch._dynamo's multiplier. Measured (`mnist-bench parity --modes all --device cpu`, 2026-12-01, CPU):
# every float32 implementation's error stayed within 1.3x the float32 reference's on every check.
MULTIPLE = 2.0


@dataclass(frozen=True)
class Floor:
    value: float
    measured: float  # the largest float32 implementation's error against float64 when it was set
    reference: float  # the float32 reference's own error then
    why: str


# The floors cover a float32 computation that is unluckier than the reference on a given input.
# Trajectories: at step 37 of 60 a max-pool/ReLU near-tie is decided differently in float32 than in
# float64 by TensorFlow, JAX (eager, compiled) and the float32 NumPy reference, which then sit
# 2.4e-4 (loss) and 8.6e-5 (weights) from float64; PyTorch eager and JAX tuned decide it as float64
# does and stay within 1e-6. The reference may fall on either side, so a trajectory floor covers one
# such flip with room for a second.
FLOORS: dict[str, Floor] = {
    "forward_logits": Floor(2e-7, 6.4e-8, 6.7e-8, "max |logit - float64 logit| over 256 test images"),
    "loss": Floor(5e-7, 2.2e-7, 2.5e-7, "|loss - float64 loss| on one batch"),
    "gradients": Floor(1e-5, 3.7e-6, 2.9e-6, "max |grad - float64 grad| / max |float64 grad|, per tensor"),
    "trajectory_loss": Floor(5e-4, 2.4e-4, 2.4e-4, "max |loss - float64 loss| over 60 steps; covers a float32 "
                             "near-tie flip (2.4e-4 at step 37)"),
    "trajectory_weights": Floor(2e-4, 8.6e-5, 8.6e-5, "max |weight - float64 weight| after 60 steps; covers a "
                                "float32 near-tie flip (8.6e-5)"),
}
# bf16, measured with `mnist-bench parity --precision bf16 --modes default,fastest --device cpu --side-by-side`
# (2026-12-02, a CPU with AVX512_BF16): every implementation's default and fastest mode against the bf16
# reference, numpy-float32-bf16. PyTorch and TensorFlow's custom step (oneDNN, which adds a convolution's or
# matmul's bias before rounding its result once, as the reference does) match the reference to the digit on
# logits and gradients. Flax, and Keras on every framework, add the bias as a bfloat16 operation of its own:
# the result is rounded twice, and the bias's gradient is a bfloat16 reduction, which JAX leaves in bfloat16
# (XLA's CPU reduce rounds its accumulator after every add: docs/framework-bugs.md, "bfloat16 bias gradients").
# The floors cover those, and stay under two planted faults (tests/planted_precision.py): dense1 in float8
# (logits 3.5e-3 from float64, loss 1.0e-4) and the loss taken in bfloat16 (loss 3.6e-4, trajectory 2.4e-2).
BF16_MEASURED = ("mnist-bench parity --precision bf16 --modes default,fastest --device cpu, 2026-12-02, "
                 "AVX512_BF16 CPU")
BF16_MULTIPLE = 2.0
BF16_FLOORS: dict[str, Floor] = {
    "forward_logits": Floor(5e-4, 1.107e-3, 8.59e-4, "max |logit - float64 logit| over 256 test images; largest "
                            "keras-torch (bias added after rounding); the float8 plant is at 3.5e-3"),
    "loss": Floor(5e-5, 3.46e-5, 2.6e-6, "|loss - float64 loss| on one batch; Keras's double rounding gives "
                  "3.5e-5 on all three frameworks; the float8 plant 1.0e-4, a bfloat16 loss 3.6e-4"),
    "gradients": Floor(0.25, 0.366, 0.0984, "max |grad - float64 grad| / max |float64 grad|, per tensor; bfloat16 "
                       "bias gradients summed over 37,000-43,000 positions: flax tuned's conv2 bias 0.37"),
    "trajectory_loss": Floor(2e-3, 4.76e-3, 2.29e-3, "max |loss - float64 loss| over 60 steps; a bfloat16 loss "
                             "is at 2.4e-2"),
    "trajectory_weights": Floor(3e-3, 7.37e-3, 3.17e-3, "max |weight - float64 weight| after 60 steps"),
}
# A run asked for a reduced precision must differ from float64 by at least this fraction of the reference's
# forward error: the smallest measured bf16 one is 0.52x the reference's (flax, 4.4e-4); float32 is 1e-4x.
APPLIED_FRACTION = 0.1
CHECKS = COMPARED
assert tuple(FLOORS) == CHECKS, "a floor for every compared check, in the same order"


@dataclass(frozen=True)
class Rule:
    multiple: float
    floors: dict[str, Floor]
    measured: str  # the command and date the constants come from


RULES: dict[str, Rule] = {
    numeric.DEFAULT: Rule(MULTIPLE, FLOORS, "mnist-bench parity --modes all --device cpu, 2026-12-01"),
    "bf16": Rule(BF16_MULTIPLE, BF16_FLOORS, BF16_MEASURED),
    # Only NVIDIA GPUs run these, and none has been lent since they exist: provisional, the floors of a
    # precision at least as coarse (fp16 has 10 mantissa bits to bf16's 7; TF32's products are fp16's, summed
    # in float32), until scripts/gpu_check.sh measures them. parity.json says which rule judged what.
    "fp16": Rule(BF16_MULTIPLE, BF16_FLOORS, "provisional: bf16's rule, not yet measured on a GPU"),
    "tf32": Rule(BF16_MULTIPLE, BF16_FLOORS, "provisional: bf16's rule, not yet measured on a GPU"),
}


def error(candidate: dict, oracle: dict, check: str) -> float:
    """The candidate's error against the float64 oracle on one check, in float64 arithmetic."""
    def as_float64(probed: dict) -> dict:
        return {k: np.asarray(v, np.float64) for k, v in probed.items() if k != "precision"}

    return difference(as_float64(oracle), as_float64(candidate), check)


def precision_of(probed: dict) -> str:
    """The precision a probe ran in (:func:`mnist_bench.bench.checks.parity.probe_backend` stores it)."""
    return str(probed.get("precision", numeric.DEFAULT))


def rule(precision: str) -> Rule:
    if precision not in RULES:
        raise ValueError(f"no parity rule for {precision} yet: its multiple and floors are set from a measured run "
                         f"(bench/checks/oracle.py, RULES); probe {', '.join(RULES)}")
    return RULES[precision]


def bound(check: str, reference_error: float, precision: str = numeric.DEFAULT) -> float:
    r = rule(precision)
    return r.multiple * reference_error + r.floors[check].value


def against_oracle(results: dict[str, dict]) -> list[dict]:
    """Every probed label but the oracle, on every check: its error, the reference's in its precision, the bound.

    Below fp32 also ``precision_applied``: its forward error is at least :data:`APPLIED_FRACTION` of the
    reference's, or it did not compute in the precision it was asked for.
    """
    labels = [label for label in results if not label.startswith("_") and label != ORACLE]
    precisions = dict.fromkeys(precision_of(results[label]) for label in labels)
    needed = [ORACLE, *(reference(p) for p in precisions)]
    if any(label not in results for label in needed):
        raise ValueError(f"parity against float64 needs the probes {', '.join(needed)}; run them with the others "
                         f"(implementation {ORACLE_BACKEND!r}, mode float64, and mode float32 in each precision)")
    oracle = results[ORACLE]
    reference_errors = {p: {check: error(results[reference(p)], oracle, check) for check in CHECKS}
                        for p in precisions}
    checks = []
    for label in labels:
        probed, p = results[label], precision_of(results[label])
        ref = reference_errors[p]
        for check in CHECKS:
            err, limit = error(probed, oracle, check), bound(check, ref[check], p)
            checks.append({"a": label, "b": ORACLE, "check": f"{check}_vs_float64", "max_abs_diff": err,
                           "reference": ref[check], "tolerance": limit, "passed": err <= limit, "precision": p})
        if p != numeric.DEFAULT and label != reference(p):
            err, floor = error(probed, oracle, "forward_logits"), APPLIED_FRACTION * ref["forward_logits"]
            checks.append({"a": label, "b": ORACLE, "check": "precision_applied", "max_abs_diff": err,
                           "reference": ref["forward_logits"], "tolerance": floor, "passed": err >= floor,
                           "precision": p})
    return checks


def describe() -> dict:
    """The rule and its constants, for parity.json."""
    return {"oracle": ORACLE, "reference": REFERENCE, "multiple": MULTIPLE,
            "floors": {name: vars(floor) for name, floor in FLOORS.items()},
            "below_fp32": {p: {"reference": reference(p), "multiple": r.multiple, "measured": r.measured,
                               "floors": {name: vars(floor) for name, floor in r.floors.items()}}
                           for p, r in RULES.items() if p != numeric.DEFAULT},
            "applied_fraction": APPLIED_FRACTION}


def error_table(checks: list[dict]) -> str:
    """Each probe's error against float64 per check (the float32 reference is one of the rows): whose rounding drifts."""
    rows: dict[str, dict[str, float]] = {}
    for c in checks:
        if c["check"].endswith("_vs_float64"):
            rows.setdefault(c["a"], {})[c["check"].removesuffix("_vs_float64")] = c["max_abs_diff"]
    if not rows:
        return ""
    width = max(len(label) for label in rows) + 2
    lines = ["error against the float64 oracle (" + ORACLE + ")",
             "".ljust(width) + "".join(name.rjust(20) for name in CHECKS)]
    for label, errors in rows.items():
        lines.append(label.ljust(width) + "".join(f"{errors.get(name, float('nan')):20.3e}" for name in CHECKS))
    return "\n".join(lines)
