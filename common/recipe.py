"""The training recipe: one frozen dataclass shared by every backend.

The default is the classic PyTorch MNIST example's recipe; ``quick`` is a
preset small enough for tests and smoke runs. A recipe can be read from a TOML
file (a flat table of field names, or a ``[recipe]`` table), and any field can
be overridden from the command line; unknown keys and invalid values raise
:class:`RecipeError` naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

DATASETS = ("mnist", "fashion-mnist")
INITS = ("shared", "native")


class RecipeError(ValueError):
    """A recipe field is unknown or has an invalid value."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Model and training settings; every backend reads the same instance."""

    dataset: str = "mnist"
    epochs: int = 5
    batch_size: int = 64
    eval_batch_size: int = 1000
    learning_rate: float = 0.01
    momentum: float = 0.5
    dropout1: float = 0.25
    dropout2: float = 0.5
    hidden: int = 128
    conv1_filters: int = 32
    conv2_filters: int = 64
    # "shared": canonical NumPy init from the seed (identical in every backend);
    # "native": each framework's own default initialisers.
    init: str = "shared"
    # Limit the training set (first N images, before shuffling); 0 means all.
    train_limit: int = 0
    # Limit the test set (first N images); 0 means all 10,000.
    test_limit: int = 0
    # Stop an epoch after this many steps; 0 means the whole epoch.
    steps_per_epoch: int = 0

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> "Recipe":
        return from_mapping({**dataclasses.asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(Recipe)}


def _validate(recipe: Recipe) -> None:
    for name, field in _fields().items():
        value = getattr(recipe, name)
        expected = {"int": int, "float": float, "str": str}[field.type]
        # bool is an int in Python; a recipe never means True as a count.
        ok = isinstance(value, expected) and not isinstance(value, bool)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise RecipeError(
                f"recipe field {name!r} must be {field.type}, got {value!r} ({type(value).__name__})"
            )
    positive = ("epochs", "batch_size", "eval_batch_size", "hidden", "conv1_filters", "conv2_filters")
    for name in positive:
        if getattr(recipe, name) <= 0:
            raise RecipeError(f"recipe field {name!r} must be a positive integer, got {getattr(recipe, name)!r}")
    for name in ("train_limit", "test_limit", "steps_per_epoch"):
        if getattr(recipe, name) < 0:
            raise RecipeError(f"recipe field {name!r} must be >= 0 (0 means no limit), got {getattr(recipe, name)!r}")
    if not 0 < recipe.learning_rate < float("inf"):
        raise RecipeError(f"recipe field 'learning_rate' must be a finite number > 0, got {recipe.learning_rate!r}")
    if not 0 <= recipe.momentum < 1:
        raise RecipeError(f"recipe field 'momentum' must be in [0, 1), got {recipe.momentum!r}")
    for name in ("dropout1", "dropout2"):
        if not 0 <= getattr(recipe, name) < 1:
            raise RecipeError(f"recipe field {name!r} must be in [0, 1), got {getattr(recipe, name)!r}")
    if recipe.dataset not in DATASETS:
        raise RecipeError(f"recipe field 'dataset' must be one of {', '.join(DATASETS)}; got {recipe.dataset!r}")
    if recipe.init not in INITS:
        raise RecipeError(f"recipe field 'init' must be one of {', '.join(INITS)}; got {recipe.init!r}")
    if recipe.train_limit and recipe.train_limit < recipe.batch_size:
        raise RecipeError(
            f"recipe field 'train_limit' ({recipe.train_limit}) is smaller than one batch "
            f"({recipe.batch_size}): no training step could run"
        )


def from_mapping(values: dict[str, Any], base: Recipe | None = None) -> Recipe:
    """Build a recipe from ``base`` (default: the default recipe) plus ``values``."""
    known = _fields()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RecipeError(
            f"unknown recipe key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(known)}"
        )
    merged = {**dataclasses.asdict(base or Recipe()), **values}
    return Recipe(**merged)


PRESETS: dict[str, Recipe] = {
    "default": Recipe(),
    # A few hundred steps: enough to see learning, quick enough for tests.
    "quick": Recipe(epochs=1, train_limit=6400, test_limit=2000),
}


def preset(name: str) -> Recipe:
    try:
        return PRESETS[name]
    except KeyError:
        raise RecipeError(f"unknown recipe preset {name!r}; choose one of {', '.join(PRESETS)}") from None


MAX_RECIPE_BYTES = 1 << 20


def load_toml(path: str | Path, base: Recipe | None = None) -> Recipe:
    """Read a recipe from TOML: top-level keys, or a ``[recipe]`` table."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            # A recipe is a dozen lines; reading at most this much keeps --recipe /dev/zero from filling memory.
            raw = fh.read(MAX_RECIPE_BYTES + 1)
        if len(raw) > MAX_RECIPE_BYTES:
            raise RecipeError(f"recipe file {str(path)!r} is larger than {MAX_RECIPE_BYTES:,} bytes; a recipe is a "
                              "flat table of field = value lines")
        # utf-8-sig: a byte-order mark (Windows editors write one) is not TOML, but means no harm.
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe file {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"recipe file {str(path)!r} is not UTF-8 text; write it as UTF-8 TOML") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe file {str(path)!r} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise RecipeError(f"recipe file {str(path)!r} nests arrays or tables too deeply to parse; a recipe is "
                          "a flat table of field = value lines") from None
    table = doc.get("recipe", doc) if isinstance(doc.get("recipe"), dict) and len(doc) == 1 else doc
    try:
        return from_mapping(table, base)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` command-line override, typed by the field it names."""
    if "=" not in text:
        raise RecipeError(f"recipe override {text!r} must look like key=value, e.g. epochs=1")
    key, raw = (part.strip() for part in text.split("=", 1))
    fields = _fields()
    if key not in fields:
        raise RecipeError(f"unknown recipe key {key!r}; known keys: {', '.join(fields)}")
    kind = fields[key].type
    try:
        value: Any = {"int": int, "float": float, "str": str}[kind](raw)
    except ValueError:
        raise RecipeError(f"recipe key {key!r} needs a {kind}, got {raw!r}") from None
    return key, value
