"""Parity against the float64 oracle: whose rounding drifts, and by how much.

Pairwise checks say that two implementations agree; they cannot say which one is right, and a
fixed bound (the old 5e-4 on a 60-step trajectory) is a guess. Every probe is therefore also
measured against the NumPy implementation in float64 (``numpy-float64``), with the rule
``torch._dynamo``'s accuracy checker uses::

    error(candidate vs float64) <= MULTIPLE * error(reference vs float64) + floor

where the reference is the same oracle computed in float32 (``numpy-float32``): the error any
float32 computation of this model is entitled to, with no framework in it. The floors stand for
the error of a float32 computation that happens to be luckier than the reference; each floor and
the multiple were set from the measurements written next to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ORACLE = "numpy-float64"
REFERENCE = "numpy-float32"
ORACLE_BACKEND = "numpy"

# torch._dynamo uses 2 (its `multiplier`); measured on this project's CPUs, every float32
# implementation's error stayed within 1.0x of the float32 reference's on every check but the
# trajectories, where a near-tie flips at different steps (see FLOORS).
MULTIPLE = 3.0


@dataclass(frozen=True)
class Floor:
    value: float
    measured: float  # the largest candidate error seen when it was set (all CPU implementations)
    reference: float  # the float32 reference's own error then
    why: str


FLOORS: dict[str, Floor] = {
    "forward_logits": Floor(1e-6, 4.4e-8, 6.7e-8, "max |logit - float64 logit| over 256 test images"),
    "loss": Floor(2e-6, 1.6e-8, 2.5e-7, "|loss - float64 loss| on one batch"),
    "gradients": Floor(2e-5, 2.9e-6, 2.9e-6, "max |grad - float64 grad| / max |float64 grad|, per tensor"),
    "trajectory_loss": Floor(5e-4, 1.6e-4, 1.6e-4,
                             "max |loss - float64 loss| over 60 steps; a near-tie in max-pool/ReLU flips at "
                             "step ~35 in float32, so the floor covers one flip"),
    "trajectory_weights": Floor(1e-3, 1.4e-4, 1.4e-4, "max |weight - float64 weight| after 60 steps"),
}
CHECKS = tuple(FLOORS)


def _relative_gradient_error(a: dict, b: dict) -> float:
    names = [k for k in b if k.startswith("g/")]
    return max(float(np.max(np.abs(a[n] - b[n])) / max(float(np.max(np.abs(b[n]))), 1e-30)) for n in names)


def error(candidate: dict, oracle: dict, check: str) -> float:
    """The candidate's error against the float64 oracle on one check (float64 arithmetic)."""
    c = {k: np.asarray(v, np.float64) for k, v in candidate.items()}
    o = {k: np.asarray(v, np.float64) for k, v in oracle.items()}
    if check == "forward_logits":
        return float(np.max(np.abs(c["logits"] - o["logits"])))
    if check == "loss":
        return abs(float(c["loss"]) - float(o["loss"]))
    if check == "gradients":
        return _relative_gradient_error(c, o)
    if check == "trajectory_loss":
        return float(np.max(np.abs(c["losses"] - o["losses"])))
    if check == "trajectory_weights":
        return max(float(np.max(np.abs(c[k] - o[k]))) for k in o if k.startswith("final/"))
    raise ValueError(f"unknown oracle check {check!r}; choose from {', '.join(CHECKS)}")


def bound(check: str, reference_error: float) -> float:
    return MULTIPLE * reference_error + FLOORS[check].value


def against_oracle(results: dict[str, dict]) -> list[dict]:
    """Every probed label but the oracle, on every check: its error, the reference's, the bound."""
    if ORACLE not in results or REFERENCE not in results:
        raise ValueError(f"parity against float64 needs the probes {ORACLE} and {REFERENCE}; "
                         f"run them with the others (implementation {ORACLE_BACKEND!r}, modes float64,float32)")
    oracle = results[ORACLE]
    reference = {check: error(results[REFERENCE], oracle, check) for check in CHECKS}
    checks = []
    for label, probed in results.items():
        if label.startswith("_") or label == ORACLE:
            continue
        for check in CHECKS:
            err, limit = error(probed, oracle, check), bound(check, reference[check])
            checks.append({"a": label, "b": ORACLE, "check": f"{check}_vs_float64", "max_abs_diff": err,
                           "reference": reference[check], "tolerance": limit, "passed": err <= limit})
    return checks
