"""Command-line options shared by ``mnist-bench`` and the tools: what each means is written once.

``--backends``, ``--modes``, ``--device``, ``--threads`` and ``--data-dir`` read the
same way in ``mnist-bench run`` and ``parity``, the benchmark driver and the perf
tools; each ``add_*`` takes the caller's default (and help, where it says more).
The ``argparse`` types here reject bad values with a message naming them.
"""

from __future__ import annotations

import argparse
import math
import os

from mnist_bench.common import precision as numeric
from mnist_bench.common import registry


def csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _checked(text: str, convert, accept, expected: str):
    """``convert(text)`` when ``accept`` holds for it; else an error naming what was ``expected`` and what came."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _checked(text, int, lambda value: value > 0, "a positive integer")


def positive_float(text: str) -> float:
    """A finite number > 0: ``inf`` would reach JSON records (which cannot hold it) and wait forever."""
    return _checked(text, float, lambda value: value > 0 and math.isfinite(value), "a positive number (finite)")


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a wait that may be zero)."""
    return _checked(text, float, lambda value: value >= 0 and math.isfinite(value), "a number >= 0 (finite)")


def fraction(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


# Every framework seeds through NumPy's legacy ``np.random.seed`` somewhere (Keras'
# ``set_random_seed`` does), which takes 0 <= seed < 2**32: the narrowest of them.
SEED_LIMIT = 2**32


def seed(text: str) -> int:
    """A seed every backend accepts: an integer in [0, 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {SEED_LIMIT - 1} (2**32 - 1: what every "
                                         f"framework's seeding accepts), got {text!r}")
    return value


def all_cpus() -> int:
    """The CPUs this process may use: the default thread count everywhere."""
    return len(os.sched_getaffinity(0))


def thread_count(text: str) -> int:
    """A positive integer no larger than :func:`all_cpus`.

    A process is pinned to its first ``threads`` usable CPUs, so more threads than
    CPUs cannot be pinned: the frameworks would oversubscribe the same cores (one
    crashed with SIGSEGV asking for 10,000) and the figures would measure contention.
    """
    value = positive_int(text)
    if value > all_cpus():
        raise argparse.ArgumentTypeError(f"{value} threads, but this process may use only {all_cpus()} CPUs "
                                         f"(its affinity); ask for {all_cpus()} or fewer")
    return value


def add_backends(parser, default: str | None = None, help: str | None = None) -> None:
    # By default the built-in implementations without the (slow) oracle; plug-ins run when named.
    names = ",".join(registry.default_names())
    parser.add_argument("--backends", default=default or names,
                        help=help or f"comma-separated, from {', '.join(registry.names())} (default: {default or names})")


def backend_names(names) -> list[str]:
    """Current implementation names for what a user wrote, in order, without repeats.

    A former name (an alias in a spec) runs the implementation it now names, with a note on
    stderr; an unknown one raises :class:`~mnist_bench.common.registry.UnknownBackend` naming the choices.
    """
    import sys

    found = []
    for name in names:
        note = registry.renamed_note(name)
        if note:
            print(note, file=sys.stderr)
        found.append(registry.canonical(name))
    return list(dict.fromkeys(found))


def add_modes(parser, default: str, help: str | None = None) -> None:
    parser.add_argument("--modes", default=default,
                        help=help or f"'all', 'default' (each backend's idiomatic mode), 'fastest' (each backend's "
                                     f"fastest proven mode) or comma-separated mode names (default: {default})")


def precisions(text: str) -> list[str]:
    """Comma-separated precision names (common/precision.py), in order, without repeats."""
    names = list(dict.fromkeys(csv(text)))
    unknown = [name for name in names if name not in numeric.NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected precisions from {', '.join(numeric.NAMES)}, separated by commas, "
                                         f"got {text!r}")
    return names


def add_precision(parser, help: str | None = None) -> None:
    parser.add_argument("--precision", type=precisions, default=[numeric.DEFAULT], metavar="P[,P...]",
                        help=help or "numeric precision: fp32 (default), bf16 (mixed bfloat16), fp16 (mixed float16 "
                                     "with loss scaling; GPUs, and CPUs with float16 arithmetic), tf32 (NVIDIA "
                                     "GPUs); several, e.g. fp32,bf16, run each, side by side per seed")


def add_device(parser, default: str = "cpu", auto: bool = True, help: str | None = None) -> None:
    """``--device``: a device kind; ``auto`` (gpu, then tpu, then cpu) only where ``auto`` is offered."""
    choices = registry.DEVICES if auto else tuple(d for d in registry.DEVICES if d != "auto")
    parser.add_argument("--device", default=default, choices=choices, help=help or f"device kind (default {default})")


def add_threads(parser, default: int | None = None, help: str | None = None, **kwargs) -> None:
    parser.add_argument("--threads", type=thread_count, default=all_cpus() if default is None else default,
                        help=help or "CPU threads for every framework (default: all CPUs this process may use)",
                        **kwargs)


def add_data_dir(parser, help: str | None = None) -> None:
    parser.add_argument("--data-dir", help=help or "dataset root holding mnist/ (else $MNIST_BENCH_DATA, else the "
                                                   "per-user cache, downloading if needed)")
