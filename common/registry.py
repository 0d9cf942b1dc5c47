"""Implementations by name, found through the ``mnist_bench.backends`` entry points.

Every implementation, built in or from another distribution, registers an
:class:`~mnist_bench.common.spec.ImplementationSpec` in that entry-point group (Python packaging's
plug-in mechanism). Loading a spec imports no framework, so availability is decided without
importing one. A plug-in that fails to load, or whose spec is invalid, becomes one line in
:func:`problems` naming its distribution; every other implementation keeps working.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from functools import lru_cache
from importlib.metadata import entry_points

from mnist_bench.common.spec import DEVICES as SPEC_DEVICES
from mnist_bench.common.spec import ImplementationSpec, NotOffered, SpecError

GROUP = "mnist_bench.backends"
THIS_DISTRIBUTION = "mnist-bench"
DEVICES = (*SPEC_DEVICES, "auto")

__all__ = ["GROUP", "DEVICES", "ImplementationSpec", "NotOffered", "SpecError", "UnknownBackend", "UnknownMode",
           "BackendNotInstalled", "specs", "aliases", "canonical", "renamed_note", "problems", "names", "built_in_names", "default_names", "spec", "modes", "default_mode",
           "fastest_mode", "SELECTORS", "all_mode_names", "select_modes", "known_broken", "all_known_broken", "missing_packages", "is_available",
           "not_installed_message", "load_backend"]


class UnknownBackend(ValueError):
    pass


class UnknownMode(ValueError):
    pass


class BackendNotInstalled(RuntimeError):
    pass


@lru_cache(maxsize=1)
def _discover() -> tuple[dict[str, tuple[ImplementationSpec, str]], tuple[str, ...]]:
    found: dict[str, tuple[ImplementationSpec, str]] = {}
    problems: list[str] = []
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        where = f"implementation {ep.name!r} from {dist} ({ep.value})"
        try:
            loaded = ep.load()
            spec = loaded() if callable(loaded) and not isinstance(loaded, ImplementationSpec) else loaded
        except Exception as exc:  # noqa: BLE001 -- a broken plug-in is reported, never fatal to the others
            problems.append(f"{where} failed to load: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(spec, ImplementationSpec):
            problems.append(f"{where} is a {type(spec).__name__}, not an ImplementationSpec")
        elif spec.name != ep.name:
            problems.append(f"{where}: the entry point is named {ep.name!r} but its spec says {spec.name!r}")
        elif spec.name in found:
            problems.append(f"{where}: the name is already taken by {found[spec.name][1]}; ignored")
        else:
            found[spec.name] = (spec, dist)
    names_ = set(found)
    for name, (spec, dist) in list(found.items()):
        taken = [a for a in spec.aliases if a in names_]
        if taken:  # a name always wins over another implementation's former name
            problems.append(f"implementation {name!r} from {dist}: alias(es) {', '.join(map(repr, taken))} are "
                            "the names of other implementations; ignored")
            found[name] = (replace(spec, aliases=tuple(a for a in spec.aliases if a not in names_)), dist)
    # Built-ins first, then plug-ins; each alphabetically, so every listing has one order.
    ordered = dict(sorted(found.items(), key=lambda kv: (kv[1][1] != THIS_DISTRIBUTION, kv[0])))
    return ordered, tuple(problems)


def specs() -> dict[str, ImplementationSpec]:
    return {name: spec for name, (spec, _) in _discover()[0].items()}


def problems() -> tuple[str, ...]:
    """One line per plug-in that could not be loaded."""
    return _discover()[1]


def distribution(name: str) -> str:
    return _discover()[0][canonical(name)][1]


def names() -> list[str]:
    return list(specs())


def built_in_names() -> list[str]:
    """The implementations this distribution ships (the oracle included), without plug-ins."""
    return [n for n, (_, dist) in _discover()[0].items() if dist == THIS_DISTRIBUTION]


def default_names() -> list[str]:
    """What a sweep runs unless told: the built-in implementations, without the (slow) oracle."""
    return [n for n, (s, dist) in _discover()[0].items() if dist == THIS_DISTRIBUTION and not s.oracle]


def aliases() -> dict[str, str]:
    """Former name -> current name, over every implementation."""
    return {alias: name for name, s in specs().items() for alias in s.aliases}


def canonical(name: str) -> str:
    """The current name of ``name``, which may be a former one (:attr:`ImplementationSpec.aliases`)."""
    if name in specs():
        return name
    if name in aliases():
        return aliases()[name]
    raise UnknownBackend(f"unknown backend {name!r}; choose from {', '.join(specs())}")


def renamed_note(name: str) -> str | None:
    """A note for a user who wrote a former name, else None."""
    new = canonical(name)
    return None if new == name else f"note: backend {name!r} is now called {new!r}; running {new!r}"


def spec(name: str) -> ImplementationSpec:
    """The spec of ``name`` (a current or a former name); :class:`UnknownBackend` naming the choices."""
    return specs()[canonical(name)]


def modes(name: str) -> tuple[str, ...]:
    return spec(name).modes


def default_mode(name: str) -> str:
    return spec(name).default_mode


def fastest_mode(name: str) -> str:
    return spec(name).fastest_mode or spec(name).default_mode


# Mode names that stand for a mode of each backend: what --modes accepts besides real mode names.
SELECTORS = {"default": default_mode, "fastest": fastest_mode}


def all_mode_names() -> list[str]:
    return sorted({mode for s in specs().values() for mode in s.modes})


def select_modes(backend: str, wanted: str) -> tuple[str, ...]:
    """``all``, or comma-separated mode names, where ``default`` and ``fastest`` stand for the backend's own.

    Returned in the backend's own order. A name no backend offers raises
    :class:`UnknownMode`; one that only other backends offer is left out for this one.
    """
    own = modes(backend)
    if wanted == "all":
        return own
    names_ = [part.strip() for part in wanted.split(",") if part.strip()]
    unknown = [n for n in names_ if n not in SELECTORS and n not in all_mode_names()]
    if unknown or not names_:
        raise UnknownMode(f"unknown mode(s) {', '.join(map(repr, unknown)) or '(none given)'}; choose 'all', "
                          f"'default', 'fastest' or from {', '.join(all_mode_names())}")
    chosen = {SELECTORS[n](backend) if n in SELECTORS else n for n in names_}
    return tuple(mode for mode in own if mode in chosen)


def known_broken(backend: str, mode: str, device: str) -> str | None:
    """Why ``backend``/``mode`` computes wrong results on ``device``, if it is known to."""
    return spec(backend).known_broken.get((mode, device))


def all_known_broken() -> dict[tuple[str, str, str], str]:
    return {(n, m, d): why for n, s in specs().items() for (m, d), why in s.known_broken.items()}


def all_env() -> dict[str, str]:
    """Every implementation's environment, for a process that may import several frameworks.

    A variable implementations set differently (``KERAS_BACKEND``: Keras runs on one framework per
    process) is left out: only a process that runs one implementation can set it.
    """
    values: dict[str, set[str]] = {}
    for s in specs().values():
        for key, value in s.env.items():
            values.setdefault(key, set()).add(value)
    return {key: found.pop() for key, found in values.items() if len(found) == 1}


def missing_packages(name: str) -> list[str]:
    """The packages ``name`` needs that cannot be found (found by spec, not imported)."""
    return [pkg for pkg in spec(name).requires if importlib.util.find_spec(pkg) is None]


def is_available(name: str) -> bool:
    return not missing_packages(name)


def not_installed_message(name: str) -> str:
    return (f"backend {name!r} is not installed (missing: {', '.join(missing_packages(name))}); "
            f"install it with: {spec(name).install}")


def load_backend(name: str, data_parallel: bool = False):
    """Import and return the backend class; raises BackendNotInstalled with a fix.

    ``data_parallel`` picks the implementation's data-parallel class, raising
    :class:`NotOffered` if it has none.
    """
    if not is_available(name):
        raise BackendNotInstalled(not_installed_message(name))
    found = spec(name).load("data_parallel" if data_parallel else "backend")
    if getattr(found, "name", name) != name:  # one class serving several specs picks its own from the environment
        raise RuntimeError(f"implementation {name!r} loaded as {found.name!r}: this process imported its framework "
                           f"before the spec's env ({dict(spec(name).env)}) was set; run it in its own process")
    return found
