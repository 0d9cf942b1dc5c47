"""The JAX runtime as both Flax implementations see it: one device, its float32 numerics, versions, memory."""

from __future__ import annotations

import jax

from mnist_bench.common.interface import DeviceUnavailable


def device(kind: str):
    """The first JAX device of ``kind``; :class:`DeviceUnavailable` naming what JAX sees and how to get more."""
    try:
        return jax.devices(kind)[0]
    except RuntimeError:
        seen = ", ".join(f"{d.platform}:{d.id}" for d in jax.devices()) or "none"
        hint = " (install jax[cuda12] or jax[cuda13] for GPUs, jax[tpu] for TPUs)" if kind != "cpu" else ""
        raise DeviceUnavailable(f"JAX {jax.__version__} sees no {kind!r} device; devices found: {seen}{hint}") from None


def use_full_float32(platform: str, tf32: bool = False) -> None:
    """Fair numerics: JAX's default float32 matmul/conv precision on GPUs and TPUs uses TF32/bf16
    passes; the parity tests caught it (docs/framework-bugs.md). CPUs compute float32 already.
    ``tf32``: the tf32 precision asks for exactly those passes on a GPU ("tensorfloat32")."""
    if platform != "cpu":
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")


def numerics(platform: str, compute_dtype: str = "float32") -> dict:
    """JAX's settings as they stand: its default matmul precision is TF32 on GPUs (bf16 passes on TPUs)."""
    precision = jax.config.jax_default_matmul_precision
    full = platform == "cpu" or precision in ("highest", "float32")
    return {"dtype": "float32", "compute_dtype": compute_dtype, "tf32": platform == "gpu" and not full,
            "matmul_precision": precision or ("default (float32 on CPUs)" if platform == "cpu" else "default")}


def compute_dtype(apply, *args) -> str:
    """The dtype ``apply(*args)`` returns, from JAX's own tracing (nothing is computed): the logits' dtype
    is what the last layer computed in, as the modules' ``dtype`` made it."""
    return str(jax.eval_shape(apply, *args).dtype)


def versions() -> dict[str, str]:
    import flax
    import jaxlib
    import optax

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__}


def device_info(kind: str, dev) -> dict:
    return {"kind": kind, "name": dev.device_kind, "count": len(jax.devices(dev.platform))}


def peak_memory(devices) -> int | None:
    """The largest ``peak_bytes_in_use`` over ``devices``; None on CPUs, which do not report it."""
    stats = [d.memory_stats() or {} for d in devices if d.platform != "cpu"]
    peaks = [s["peak_bytes_in_use"] for s in stats if "peak_bytes_in_use" in s]
    return int(max(peaks)) if peaks else None


class OneDeviceReport:
    """What a single-device JAX backend reports about its runtime; needs ``self.device`` (the kind),
    ``self._device`` (the JAX device) and ``self._compute_dtype`` (from :func:`compute_dtype`)."""

    def versions(self) -> dict[str, str]:
        return versions()

    def device_info(self) -> dict:
        return device_info(self.device, self._device)

    def numerics(self) -> dict:
        return numerics(self._device.platform, self._compute_dtype)

    def peak_device_memory(self) -> int | None:
        return peak_memory([self._device])


class MeshReport:
    """The same for a data-parallel JAX backend; needs ``self.data`` (a :class:`~.mesh.DataMesh`)."""

    def versions(self) -> dict[str, str]:
        return versions()

    def device_info(self) -> dict:
        return self.data.device_info(self.device)

    def numerics(self) -> dict:
        return numerics(self.data.devices[0].platform)

    def peak_device_memory(self) -> int | None:
        return peak_memory(self.data.mesh.local_devices)
