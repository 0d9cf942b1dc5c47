"""The numeric precision a run trains in: what each name means, and where it can run.

One table, read by the CLI (which precisions exist, which device refuses which), the run id and the
record, the report's groups and every implementation (through :attr:`Precision.compute_dtype`).
Each implementation does it its framework's own recommended way (``torch.autocast``, Keras dtype
policies, Flax ``dtype``/``param_dtype``); what they share is written here:

* parameters, gradients as applied and the optimiser state stay float32;
* the loss is computed in float32, from float32 logits;
* convolutions and matmuls run in :attr:`Precision.compute_dtype`.

``fp32`` is float32 throughout, with TF32 and bf16 passes turned off on GPUs and TPUs (the fairness
rule the float32 parity tests rely on). Its run ids carry no precision: every record written before
this dimension existed is an fp32 run, and keeps its id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

DEFAULT = "fp32"


class PrecisionRefused(ValueError):
    """A precision that does not exist, or that this device cannot do; the message says why and what to choose."""


@dataclass(frozen=True)
class Precision:
    name: str  # as written in the CLI, run ids and records
    compute_dtype: str  # what convolutions and matmuls compute in ("float32" for fp32 and tf32)
    description: str
    # device kind -> why this precision is refused there; a device not named here can run it.
    refused_on: Mapping[str, str] = field(default_factory=dict)
    tf32: bool = False  # float32 matmuls and convolutions on TF32 tensor cores
    loss_scaling: bool = False  # float16 gradients underflow without it

    def __post_init__(self) -> None:
        object.__setattr__(self, "refused_on", MappingProxyType(dict(self.refused_on)))

    @property
    def keras_policy(self) -> str:
        """The Keras dtype policy that computes in this precision (float32 variables either way)."""
        return "float32" if self.compute_dtype == "float32" else f"mixed_{self.compute_dtype}"


_TF32_ONLY_NVIDIA = "TF32 is a format of NVIDIA tensor cores (Ampere and later); there is none on a {device}"
PRECISIONS: dict[str, Precision] = {
    p.name: p for p in (
        Precision("fp32", "float32", "float32 throughout; TF32 and bf16 passes turned off"),
        Precision("bf16", "bfloat16", "mixed bfloat16: convolutions and matmuls in bfloat16; float32 parameters, "
                  "optimiser state and loss"),
        Precision("fp16", "float16", "mixed float16: convolutions and matmuls in float16 with dynamic loss scaling; "
                  "float32 parameters, optimiser state and loss",
                  refused_on={"tpu": "TPUs compute in bfloat16, not float16; choose bf16"},
                  loss_scaling=True),
        Precision("tf32", "float32", "float32 parameters and activations; matmuls and convolutions on TF32 tensor "
                  "cores (10-bit mantissa products, float32 accumulation)",
                  refused_on={"cpu": _TF32_ONLY_NVIDIA.format(device="CPU"),
                              "tpu": _TF32_ONLY_NVIDIA.format(device="TPU") + "; choose bf16"},
                  tf32=True),
    )
}
NAMES = tuple(PRECISIONS)

# Without these a CPU has no float16 arithmetic: frameworks then convert every operand to float32 and back,
# slower than float32 itself, so a "float16" figure would measure the emulation.
CPU_FP16_FLAGS = ("avx512_fp16", "amx_fp16")
# bfloat16 runs on any CPU (the parity tests need it everywhere); only these make it fast.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def get(name: str) -> Precision:
    try:
        return PRECISIONS[name]
    except KeyError:
        raise PrecisionRefused(f"unknown precision {name!r}; choose from {', '.join(NAMES)}") from None


def refusal(name: str, device: str, cpu_flags: list[str] | None = None) -> str | None:
    """Why ``device`` cannot train in precision ``name``, or None when it can.

    ``cpu_flags``: the CPU's vector extensions (:func:`mnist_bench.common.machine.cpu_flags`), read for
    fp16 on a CPU, which only CPUs with float16 arithmetic do at a speed worth measuring.
    """
    precision = get(name)
    if device in precision.refused_on:
        return f"{name} on {device}: {precision.refused_on[device]}"
    if name == "fp16" and device == "cpu" and not set(cpu_flags or ()) & set(CPU_FP16_FLAGS):
        return (f"fp16 on this CPU: it has none of {', '.join(CPU_FP16_FLAGS)} (/proc/cpuinfo), so the frameworks "
                "emulate float16 by converting to float32 and back, slower than float32; choose bf16 or fp32")
    return None


def run_id_part(name: str) -> str:
    """The precision as it appears in a run id: nothing for fp32 (older records keep their ids), else ``bf16-``."""
    return "" if name == DEFAULT else f"{get(name).name}-"


def of(record: dict) -> str:
    """A record's precision; records from before the precision dimension trained in fp32."""
    return record.get("precision", DEFAULT)


def check_applied(name: str, numerics: dict) -> None:
    """Raise :class:`PrecisionRefused` when the framework's own read-back says it is not computing in ``name``.

    Every implementation reports ``compute_dtype`` in its numerics, read from the framework (the Keras
    policy's compute dtype, the Flax modules' ``dtype``, autocast's dtype), so a precision that was
    silently dropped, and a float32 run passed off as bf16, fail here instead of being recorded.
    """
    precision = get(name)
    found = numerics.get("compute_dtype", "float32")  # a plug-in written before precisions existed: float32
    if found != precision.compute_dtype:
        raise PrecisionRefused(f"asked for {name} ({precision.compute_dtype} compute), but the framework reports "
                               f"compute dtype {found!r}: the precision was not applied")
    if numerics.get("tf32") is not None and bool(numerics["tf32"]) != precision.tf32:
        state = "on" if numerics["tf32"] else "off"
        raise PrecisionRefused(f"asked for {name}, but the framework reports TF32 {state}")
