"""Input checks that need more than one option's value, run before any work starts.

``argparse`` types (:mod:`mnist_bench.bench.options`) check one value each; what is
here needs several values, the file system or the data set. Each check raises
:class:`InputError` naming the option and the fix, which the commands turn into
exit code 2 before any run directory, worker or framework exists.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from mnist_bench.bench.options import SEED_LIMIT
from mnist_bench.common import records

# More runs than anyone can wait for (at a few seconds each, days); the bound keeps a
# mistyped --seeds from planning (and allocating) billions of runs before saying anything.
MAX_RUNS = 10_000


class InputError(ValueError):
    """Bad input found by a check here; reported with exit code 2."""


def check_sweep(first_seed: int, seeds: int, runs_per_seed: int) -> None:
    """Refuse seeds past :data:`SEED_LIMIT` and sweeps over :data:`MAX_RUNS` runs, before planning them."""
    last = first_seed + seeds - 1
    if last >= SEED_LIMIT:
        raise InputError(f"--first-seed {first_seed} with --seeds {seeds} reaches seed {last}, but a seed must be "
                         f"below 2**32 ({SEED_LIMIT}); lower --first-seed or --seeds")
    if seeds * runs_per_seed > MAX_RUNS:
        raise InputError(f"--seeds {seeds} plans {seeds * runs_per_seed:,} runs ({runs_per_seed} per seed), more "
                         f"than the {MAX_RUNS:,} one sweep may hold; lower --seeds, or split the sweep with "
                         "--first-seed")


def check_device_offered(backends: Iterable[str], device: str) -> None:
    """Refuse ``--device`` naming a kind a backend's spec does not offer (its worker could only fail)."""
    from mnist_bench.common import registry

    if device == "auto":
        return
    lacking = [name for name in backends if device not in registry.spec(name).devices]
    if lacking:
        offered = "; ".join(f"{name}: {', '.join(registry.spec(name).devices)}" for name in lacking)
        raise InputError(f"--device {device} is not offered by {', '.join(lacking)} ({offered}); choose one they "
                         "offer, --device auto, or leave them out with --backends")


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def writable_dir(path: Path, option: str, named: Path | None = None) -> None:
    """Refuse ``path`` as a directory to write into: a file on the way, or no write permission where it would be made.

    Writing is tried (a temporary directory, removed at once) rather than judged from
    permission bits, which say nothing of a read-only file system and little for root.
    The message names ``option`` with ``named`` (default ``path``), what the user typed.
    """
    path = Path(path)
    label = f"{option} {named or path}"
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == Path(named or path) else f"lies under {existing}, which is a file"
        raise InputError(f"{label}: {where}, not a directory; choose a directory path")
    try:
        shutil.rmtree(tempfile.mkdtemp(prefix=".mnist-bench-write-check-", dir=existing))
    except OSError as exc:
        raise InputError(f"{label}: cannot write in {existing} ({exc.strerror or exc}); "
                         "choose a writable place") from None


def writable_file(path: Path, option: str) -> None:
    """Refuse ``path`` as a file to (over)write: a directory there, or nowhere writable to put it."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory; give a file name, e.g. {path / 'runs.csv'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path}: the file is not writable; choose another file")
    writable_dir(path.parent, option, named=path)


def run_dirs_with_records(paths: Iterable[Path]) -> None:
    """Refuse a RUN_DIR that does not exist or holds no records (a mistyped path), naming it."""
    for path in paths:
        if not Path(path).is_dir():
            raise InputError(f"RUN_DIR {path}: no such directory; give a run directory written by "
                             "`mnist-bench run` (it holds *.run.json files)")
        if not records.record_paths(Path(path)):
            inner = sorted(p.parent.name for p in Path(path).glob(f"*/*{records.RECORD_SUFFIX}"))
            hint = f"; its subdirectories {', '.join(dict.fromkeys(inner))} do" if inner else ""
            raise InputError(f"RUN_DIR {path}: holds no *{records.RECORD_SUFFIX} run records{hint}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_data(recipe, data_dir: str | None, say: Callable[[str], None] = _stderr) -> None:
    """Find (or download, once), verify and size the recipe's data set before any worker starts.

    Every worker would load it again after importing its framework; a missing, corrupt
    or too small data set found there fails each run in turn with exit 1. Here it is
    one message and exit 2. Also refuses a batch larger than the training set (every
    epoch would have no full batch, so no step).
    """
    from mnist_bench.common import datasets

    try:
        if datasets.find_dataset_dir(recipe.dataset, data_dir) is None:
            say(f"dataset {recipe.dataset!r} is not here yet: downloading it once, before the runs start")
        data = datasets.load(recipe.dataset, data_dir, say=say)
    except datasets.DataError as exc:
        raise InputError(f"--data-dir: {exc}") from None
    available = len(data.train_labels)
    train = min(recipe.train_limit or available, available)
    if recipe.batch_size > train:
        limited = f" (train_limit {recipe.train_limit})" if recipe.train_limit and recipe.train_limit < available else ""
        raise InputError(f"recipe batch_size {recipe.batch_size} is larger than the training set: {train:,} "
                         f"{recipe.dataset} images{limited}, so no training step could run; "
                         f"use --set batch_size={min(train, 64)} or smaller")
