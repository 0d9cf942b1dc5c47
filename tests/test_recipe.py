"""The training recipe: defaults, presets, TOML loading, overrides and validation."""

import dataclasses

import pytest

from mnist_bench.common import recipe as recipes
from mnist_bench.common.recipe import Recipe, RecipeError


def test_defaults_are_the_documented_recipe():
    r = Recipe()
    assert r.dataset == "mnist"
    assert r.epochs == 5
    assert r.batch_size == 64
    assert r.learning_rate == 0.01
    assert r.momentum == 0.5
    assert (r.dropout1, r.dropout2) == (0.25, 0.5)
    assert r.hidden == 128
    assert (r.conv1_filters, r.conv2_filters) == (32, 64)
    assert r.init == "shared"
    assert (r.train_limit, r.test_limit, r.steps_per_epoch) == (0, 0, 0)


def test_recipe_is_frozen():
    r = Recipe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.epochs = 1  # type: ignore[misc]


def test_to_dict_round_trips():
    r = Recipe(epochs=2, learning_rate=0.1)
    assert recipes.from_mapping(r.to_dict()) == r


def test_presets():
    assert recipes.preset("default") == Recipe()
    quick = recipes.preset("quick")
    assert quick.epochs == 1
    assert quick.train_limit == 6400 and quick.test_limit == 2000
    # Everything else is the default recipe.
    assert quick.replace(epochs=5, train_limit=0, test_limit=0) == Recipe()


def test_unknown_preset_names_the_choices():
    with pytest.raises(RecipeError) as err:
        recipes.preset("huge")
    msg = str(err.value)
    assert "huge" in msg and "default" in msg and "quick" in msg


# --- TOML -------------------------------------------------------------------------------


def test_load_toml_flat(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('epochs = 2\nlearning_rate = 0.05\ndataset = "fashion-mnist"\n')
    r = recipes.load_toml(path)
    assert r == Recipe(epochs=2, learning_rate=0.05, dataset="fashion-mnist")


def test_load_toml_recipe_table_over_base(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[recipe]\nbatch_size = 32\nmomentum = 0.9\n")
    base = recipes.preset("quick")
    r = recipes.load_toml(path, base)
    assert r == base.replace(batch_size=32, momentum=0.9)
    assert r.train_limit == 6400 and r.epochs == 1  # kept from the base


def test_load_toml_flat_over_base(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("epochs = 3\n")
    r = recipes.load_toml(path, recipes.preset("quick"))
    assert r.epochs == 3 and r.test_limit == 2000


def test_load_toml_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("epochz = 3\n")
    with pytest.raises(RecipeError) as err:
        recipes.load_toml(path)
    msg = str(err.value)
    assert "epochz" in msg and str(path) in msg and "epochs" in msg


def test_load_toml_wrong_type(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("epochs = 1.5\n")
    with pytest.raises(RecipeError, match="epochs"):
        recipes.load_toml(path)


def test_load_toml_missing_and_invalid_file(tmp_path):
    with pytest.raises(RecipeError, match="missing.toml"):
        recipes.load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        recipes.load_toml(bad)


# --- validation -------------------------------------------------------------------------


def test_unknown_keys_name_the_key_and_known_keys():
    with pytest.raises(RecipeError) as err:
        recipes.from_mapping({"epochs": 1, "lr": 0.1, "zzz": 2})
    msg = str(err.value)
    assert "'lr'" in msg and "'zzz'" in msg
    assert "learning_rate" in msg and "batch_size" in msg


@pytest.mark.parametrize(
    "field, value, expected_type",
    [
        ("epochs", True, "int"),  # bool is not a count
        ("batch_size", False, "int"),
        ("epochs", 2.0, "int"),
        ("epochs", "5", "int"),
        ("learning_rate", "0.1", "float"),
        ("learning_rate", True, "float"),
        ("dataset", 1, "str"),
    ],
)
def test_wrong_types_raise(field, value, expected_type):
    with pytest.raises(RecipeError) as err:
        Recipe(**{field: value})
    msg = str(err.value)
    assert repr(field) in msg and expected_type in msg


def test_int_accepted_for_float_field():
    assert Recipe(learning_rate=1).learning_rate == 1


@pytest.mark.parametrize(
    "changes, field, allowed",
    [
        ({"batch_size": 0}, "batch_size", "positive integer"),
        ({"epochs": -1}, "epochs", "positive integer"),
        ({"eval_batch_size": 0}, "eval_batch_size", "positive integer"),
        ({"hidden": 0}, "hidden", "positive integer"),
        ({"momentum": 1.0}, "momentum", "[0, 1)"),
        ({"momentum": -0.1}, "momentum", "[0, 1)"),
        ({"dropout1": 1.0}, "dropout1", "[0, 1)"),
        ({"dropout2": 1.0}, "dropout2", "[0, 1)"),
        ({"learning_rate": 0}, "learning_rate", "> 0"),
        ({"learning_rate": -0.1}, "learning_rate", "> 0"),
        ({"learning_rate": float("nan")}, "learning_rate", "> 0"),
        ({"test_limit": -1}, "test_limit", ">= 0"),
        ({"steps_per_epoch": -1}, "steps_per_epoch", ">= 0"),
        ({"dataset": "cifar"}, "dataset", "mnist, fashion-mnist"),
        ({"init": "xavier"}, "init", "shared, native"),
        ({"train_limit": 10}, "train_limit", "(64)"),
        ({"train_limit": 31, "batch_size": 32}, "train_limit", "(32)"),
    ],
)
def test_out_of_range_values_raise(changes, field, allowed):
    with pytest.raises(RecipeError) as err:
        Recipe(**changes)
    msg = str(err.value)
    assert repr(field) in msg
    assert allowed in msg


def test_boundary_values_are_accepted():
    Recipe(momentum=0.0, dropout1=0.0, dropout2=0.0)
    Recipe(train_limit=64)  # exactly one batch
    Recipe(train_limit=0, test_limit=1, steps_per_epoch=1)


# --- overrides and replace ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key, value, kind",
    [
        ("epochs=3", "epochs", 3, int),
        (" batch_size = 128 ", "batch_size", 128, int),
        ("learning_rate=0.05", "learning_rate", 0.05, float),
        ("momentum=1", "momentum", 1.0, float),
        ("dataset=fashion-mnist", "dataset", "fashion-mnist", str),
        ("init=native", "init", "native", str),
        ("dataset=a=b", "dataset", "a=b", str),
    ],
)
def test_parse_override_types(text, key, value, kind):
    k, v = recipes.parse_override(text)
    assert k == key and v == value and type(v) is kind


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("epochs", "key=value"),
        ("epochz=3", "epochz"),
        ("epochs=three", "epochs"),
        ("epochs=1.5", "int"),
        ("learning_rate=fast", "float"),
    ],
)
def test_parse_override_errors(text, fragment):
    with pytest.raises(RecipeError) as err:
        recipes.parse_override(text)
    assert fragment in str(err.value)


def test_replace_returns_new_validated_recipe():
    base = Recipe()
    r = base.replace(epochs=1, learning_rate=0.1)
    assert r.epochs == 1 and r.learning_rate == 0.1
    assert base.epochs == 5  # unchanged
    with pytest.raises(RecipeError, match="epochs"):
        base.replace(epochs=0)
    with pytest.raises(RecipeError, match="nope"):
        base.replace(nope=1)
    with pytest.raises(RecipeError, match="batch_size"):
        base.replace(batch_size=True)


def test_override_then_replace_validates():
    key, value = recipes.parse_override("momentum=1.0")
    with pytest.raises(RecipeError, match="momentum"):
        Recipe().replace(**{key: value})
