"""What an implementation is, in one place: :class:`ImplementationSpec`.

Each implementation's folder holds one spec (``backends/torch_backend/spec.py``) and registers it
through the ``mnist_bench.backends`` entry-point group in its distribution's ``pyproject.toml``;
an implementation in another package does the same in its own. The registry, the CLI, record
validation, the benchmark suite, the overhead and profile tools and the tests all read specs;
none keeps its own list. A spec module imports no framework: loading it must stay cheap, and
availability is decided from :attr:`ImplementationSpec.requires` without importing anything.

Parts of an implementation are named ``"module:attribute"``, the module relative to
:attr:`ImplementationSpec.package`, and imported only when used (inside a worker process).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mnist_bench.common import precision as numeric

DEVICES = ("cpu", "gpu", "tpu")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_PART = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class SpecError(ValueError):
    """A spec that cannot be used; the message names the field and the fix."""


class NotOffered(LookupError):
    """An optional part (data-parallel class, plain loop, matmul probe, profiler) the implementation does not have."""


@dataclass(frozen=True)
class ImplementationSpec:
    """Everything mnist-bench needs to know about one implementation, without importing it.

    ``known_broken`` maps ``(mode, device)`` to why that combination computes wrong results;
    the harness refuses it unless asked explicitly and the parity tests expect it to fail.
    ``env`` is set before the framework is imported (in every process that imports it).
    """

    name: str  # as written in the CLI and in records: lower case, digits and '-'
    package: str  # importable path of the implementation's folder, e.g. "mnist_bench.backends.torch_backend"
    backend: str  # "module:Class" of the single-device Backend subclass
    modes: tuple[str, ...]
    default_mode: str  # the framework's idiomatic way; what a user of it would write
    requires: tuple[str, ...]  # import names that must be findable (checked with importlib.util.find_spec)
    install: str  # the command that installs what `requires` names
    description: str = ""
    # The mode measured fastest on the reference CPU (results/reference-cpu-2026-11-29), proven the same model as
    # default_mode by the parity tests; `--modes fastest` selects it. None: the default is the fastest.
    fastest_mode: str | None = None
    # A layer over another implementation (Keras over the framework it runs on, Flax NNX over Linen): the
    # report's first lines say what the layer costs, default mode against default, fastest against fastest.
    layer: str = ""  # what the layer is called there, e.g. "Keras"
    layer_over: str | None = None  # the implementation underneath
    # Former names: the registry resolves them to ``name``, so records and commands written before a
    # rename still read, report, compare and run (with a note naming the new name).
    aliases: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu", "gpu")
    data_parallel: str | None = None  # "module:Class" of the data-parallel Backend subclass
    data_parallel_modes: tuple[str, ...] = ()
    one_process_per_device: bool = False  # data-parallel runs start one process per device (torchrun style)
    virtual_cpu_devices: bool = False  # --devices N on a CPU splits it into N XLA host devices
    plain_loop: str | None = None  # "module:MAPPING": mode -> factory(recipe, train_x, train_y, log_every) -> train(rows)
    matmul_probe: str | None = None  # "module:function(n, device) -> block(repeats)": peak matmul timing
    profiler: str | None = None  # "module:function(mode, steps, data_dir) -> [(op, share)]"
    env: Mapping[str, str] = field(default_factory=dict)
    known_broken: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # The numeric precisions it implements (common/precision.py), each its framework's recommended way; a
    # precision not named here is refused before any run starts, never trained silently in float32.
    precisions: tuple[str, ...] = ("fp32",)
    oracle: bool = False  # the float64 reference every other implementation is measured against
    accuracy_parity: bool = True  # fast enough to train an epoch in the statistical-parity test

    def __post_init__(self) -> None:
        object.__setattr__(self, "modes", tuple(self.modes))
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "data_parallel_modes", tuple(self.data_parallel_modes))
        object.__setattr__(self, "precisions", tuple(self.precisions))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "known_broken", MappingProxyType(dict(self.known_broken)))
        problems = self.problems()
        if problems:
            raise SpecError(f"spec {self.name!r}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            found.append(f"name {self.name!r} must be lower case letters, digits and '-', starting with a letter")
        for alias in self.aliases:
            if not isinstance(alias, str) or not _NAME.match(alias) or alias == self.name:
                found.append(f"alias {alias!r} must be a former name: lower case letters, digits and '-', "
                             "not the name itself")
        if not self.modes:
            found.append("modes is empty")
        elif self.default_mode not in self.modes:
            found.append(f"default_mode {self.default_mode!r} is not one of modes {list(self.modes)}")
        if (self.layer_over is None) != (not self.layer):
            found.append("layer and layer_over go together: name both or neither")
        if self.fastest_mode is not None and self.fastest_mode not in self.modes:
            found.append(f"fastest_mode {self.fastest_mode!r} is not one of modes {list(self.modes)}")
        for label, part in (("backend", self.backend), ("data_parallel", self.data_parallel),
                            ("plain_loop", self.plain_loop), ("matmul_probe", self.matmul_probe),
                            ("profiler", self.profiler)):
            if part is not None and not (isinstance(part, str) and _PART.match(part)):
                found.append(f"{label} {part!r} must be 'module:attribute'")
        unknown = [d for d in self.devices if d not in DEVICES]
        if unknown:
            found.append(f"devices {unknown} are not among {list(DEVICES)}")
        if self.data_parallel is None and self.data_parallel_modes:
            found.append("data_parallel_modes given without a data_parallel class")
        if self.data_parallel is not None and not set(self.data_parallel_modes) <= set(self.modes):
            found.append(f"data_parallel_modes {list(self.data_parallel_modes)} are not all in modes")
        unknown_precisions = [p for p in self.precisions if p not in numeric.NAMES]
        if unknown_precisions or numeric.DEFAULT not in self.precisions:
            found.append(f"precisions {list(self.precisions)} must include {numeric.DEFAULT!r} and name only "
                         f"{list(numeric.NAMES)}")
        for key in self.known_broken:
            if not (isinstance(key, tuple) and len(key) == 2 and key[0] in self.modes and key[1] in DEVICES):
                found.append(f"known_broken key {key!r} must be (mode, device) with a mode of this implementation")
        return found

    def load(self, part: str) -> object:
        """Import ``part`` (one of the "module:attribute" fields) and return the attribute.

        Raises :class:`NotOffered` naming what is missing when this implementation has no such part.
        """
        where = getattr(self, part)
        if where is None:
            raise NotOffered(f"implementation {self.name!r} has no {part.replace('_', '-')} "
                             f"(its spec, {self.package}.spec, does not set {part!r})")
        module, attribute = where.split(":")
        return getattr(importlib.import_module(f"{self.package}.{module}"), attribute)

    def offers(self, part: str) -> bool:
        return getattr(self, part) is not None
