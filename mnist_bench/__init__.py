"""mnist-bench's public API, under one name that is clearly this project's.

The project's folders keep the design's names (``common/``, ``bench/``, ``backends/``) but are
installed *inside* this package (``mnist_bench.common`` and so on, mapped in ``pyproject.toml``),
so installing mnist-bench never adds a top-level ``common`` or ``bench`` that could collide with
another distribution's. Code outside this repository imports from here:

- :class:`Backend` (and :class:`DeviceUnavailable`): the interface an implementation subclasses;
  :class:`EpochTrainer` beside it for a framework that trains a whole epoch per call (``model.fit``);
- :class:`ImplementationSpec`: how an implementation describes itself to the registry;
- :mod:`mnist_bench.parity`: check an implementation against another and against the float64 oracle;
- the pytest plug-in :mod:`mnist_bench.pytest_plugin` (a ``pytest11`` entry point, so its fixtures
  are there in any project that has mnist-bench installed).

docs/adding-an-implementation.md says how. Importing this package imports no framework.
"""

_EXPORTS = {
    "Backend": "mnist_bench.common.interface",
    "DeviceUnavailable": "mnist_bench.common.interface",
    "EpochTrainer": "mnist_bench.common.interface",
    "ImplementationSpec": "mnist_bench.common.spec",
    "NotOffered": "mnist_bench.common.spec",
    "SpecError": "mnist_bench.common.spec",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Lazy, so that importing any mnist_bench module does not import the interface's dependencies.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mnist_bench' has no attribute {name!r}")
