"""Backend names -> modules, with availability checked without importing a framework."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str
    cls: str
    packages: tuple[str, ...]
    pip_extra: str


BACKENDS: dict[str, BackendEntry] = {
    "torch": BackendEntry("torch", "mnist_bench.backends.torch_backend.backend", "TorchBackend", ("torch",), "torch"),
    "tensorflow": BackendEntry(
        "tensorflow", "mnist_bench.backends.tensorflow_backend.backend", "TensorFlowBackend", ("tensorflow", "keras"), "tensorflow"
    ),
    "jax": BackendEntry("jax", "mnist_bench.backends.jax_backend.backend", "JaxBackend", ("jax", "flax", "optax"), "jax"),
}

# Data-parallel training (--devices N > 1 or --hosts > 1), each on its framework's own
# engine: torch.distributed DDP, tf.distribute Mirrored/MultiWorkerMirrored, jax.sharding.
DATA_PARALLEL: dict[str, BackendEntry] = {
    "torch": BackendEntry("torch", "mnist_bench.backends.torch_backend.ddp", "TorchDDPBackend", ("torch",), "torch"),
    "tensorflow": BackendEntry("tensorflow", "mnist_bench.backends.tensorflow_backend.mirrored", "TensorFlowMirroredBackend",
                               ("tensorflow", "keras"), "tensorflow"),
    "jax": BackendEntry("jax", "mnist_bench.backends.jax_backend.mesh", "JaxMeshBackend", ("jax", "flax", "optax"), "jax"),
}
# The data-parallel backends run each framework's recommended mode only.
DATA_PARALLEL_MODES: dict[str, tuple[str, ...]] = {"torch": ("eager",), "tensorflow": ("compiled",), "jax": ("compiled",)}

# What each backend can run, kept here so the CLI validates without importing a framework.
# The default mode is each framework's idiomatic path; ``tuned`` is the fastest way
# found to train this exact model with that framework (bench/README.md says how).
MODES: dict[str, tuple[str, ...]] = {
    "torch": ("eager", "compiled", "tuned"),
    "tensorflow": ("eager", "compiled", "xla", "tuned"),
    "jax": ("eager", "compiled", "tuned"),
}
DEFAULT_MODE = {"torch": "eager", "tensorflow": "compiled", "jax": "compiled"}
DEVICES = ("cpu", "gpu", "tpu", "auto")

# (backend, mode, device) -> why its results are wrong. Found by the parity tests;
# details and a minimal reproducer in docs/framework-bugs.md. The harness refuses
# these unless asked explicitly, and the parity tests expect them to fail (strictly,
# so a fixed framework version is noticed).
KNOWN_BROKEN: dict[tuple[str, str, str], str] = {
    ("torch", "compiled", "cpu"): (
        "torch.compile (Inductor, CPU) in torch 2.13 returns zero gradients for both conv layers of this "
        "model at batch 64: the convolutions never train (docs/framework-bugs.md)"
    ),
}


class UnknownBackend(ValueError):
    pass


class UnknownMode(ValueError):
    pass


def all_mode_names() -> list[str]:
    return sorted({mode for modes in MODES.values() for mode in modes})


def select_modes(backend: str, spec: str) -> tuple[str, ...]:
    """``all``, or comma-separated mode names, where ``default`` stands for the backend's default.

    Returned in the backend's own order. A name no backend offers raises
    :class:`UnknownMode`; one that only other backends offer is left out for this one.
    """
    if spec == "all":
        return MODES[backend]
    names = [part.strip() for part in spec.split(",") if part.strip()]
    unknown = [name for name in names if name != "default" and name not in all_mode_names()]
    if unknown or not names:
        raise UnknownMode(f"unknown mode(s) {', '.join(map(repr, unknown)) or '(none given)'}; choose 'all', "
                          f"'default' or from {', '.join(all_mode_names())}")
    wanted = {DEFAULT_MODE[backend] if name == "default" else name for name in names}
    return tuple(mode for mode in MODES[backend] if mode in wanted)


class BackendNotInstalled(RuntimeError):
    pass


def entry(name: str) -> BackendEntry:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}") from None


def missing_packages(name: str) -> list[str]:
    """The packages ``name`` needs that cannot be found (found by spec, not imported)."""
    return [pkg for pkg in entry(name).packages if importlib.util.find_spec(pkg) is None]


def is_available(name: str) -> bool:
    return not missing_packages(name)


def not_installed_message(name: str) -> str:
    missing = missing_packages(name)
    return (
        f"backend {name!r} is not installed (missing: {', '.join(missing)}); "
        f"install it with: pip install -c constraints.txt -e '.[{entry(name).pip_extra}]'"
    )


def load_backend(name: str, data_parallel: bool = False):
    """Import and return the backend class; raises BackendNotInstalled with a fix.

    ``data_parallel`` picks the framework's data-parallel backend instead.
    """
    if not is_available(name):
        raise BackendNotInstalled(not_installed_message(name))
    e = DATA_PARALLEL[entry(name).name] if data_parallel else entry(name)
    return getattr(importlib.import_module(e.module), e.cls)
