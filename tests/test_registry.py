"""Implementation names: a renamed implementation's former name (a spec's ``aliases``) keeps old
records and commands working, and a spec's aliases are checked like its name."""

from types import SimpleNamespace

import pytest

from mnist_bench.bench.results.compare import compare
from mnist_bench.common import records, registry
from mnist_bench.common.spec import ImplementationSpec, SpecError
from record_factory import make_record, write_run_dir

MINIMAL = dict(package="p", backend="backend:B", modes=("m",), default_mode="m", requires=(), install="pip install p")


def test_the_linen_implementation_answers_to_its_former_name():
    assert registry.canonical("jax") == "flax-linen"
    assert registry.spec("jax") is registry.spec("flax-linen")
    assert registry.canonical("flax-nnx") == "flax-nnx"
    assert registry.renamed_note("jax") == "note: backend 'jax' is now called 'flax-linen'; running 'flax-linen'"
    assert registry.renamed_note("flax-linen") is None
    assert "jax" not in registry.names()  # listed once, under its current name
    with pytest.raises(registry.UnknownBackend, match="'linen'.*flax-linen"):
        registry.canonical("linen")


@pytest.mark.parametrize("alias", ["Jax", "the same", "x"])
def test_an_alias_must_be_a_valid_former_name(alias):
    with pytest.raises(SpecError, match="alias"):
        ImplementationSpec(name="x", aliases=(alias,), **MINIMAL)


def _entry_point(name, spec, dist="someone-else"):
    return SimpleNamespace(name=name, value=f"{name}.spec:SPEC", dist=SimpleNamespace(name=dist), load=lambda: spec)


def test_an_alias_never_hides_another_implementations_name(monkeypatch):
    grabby = ImplementationSpec(name="grabby", aliases=("torch", "old-grabby"), **MINIMAL)
    torch = registry.spec("torch")
    monkeypatch.setattr(registry, "entry_points", lambda group: [_entry_point("torch", torch, "mnist-bench"),
                                                                 _entry_point("grabby", grabby)])
    found, problems = registry._discover.__wrapped__()
    assert found["grabby"][0].aliases == ("old-grabby",)
    assert len(problems) == 1 and "'torch'" in problems[0] and "ignored" in problems[0]


def _old_record(seed: int) -> dict:
    """A record as the harness wrote it before the rename: backend 'jax'."""
    record = make_record(backend="flax-linen", mode="compiled", seed=seed)
    return {**record, "backend": "jax", "run_id": f"jax-compiled-cpu-s{seed}"}


def test_old_records_read_under_the_current_name_and_compare_with_new_ones(tmp_path):
    old = write_run_dir(tmp_path, [_old_record(s) for s in range(2)], "old")
    read = records.read_dirs([old])
    assert {r["backend"] for r in read} == {"flax-linen"}
    assert {r["backend_as_recorded"] for r in read} == {"jax"}
    new = write_run_dir(tmp_path, [make_record(backend="flax-linen", mode="compiled", seed=s) for s in range(2)], "new")
    result = compare([old], [new])
    assert result.exit_code == 0 and len(result.matches) == 2 and not result.missing


def test_the_committed_reference_still_reads():
    from pathlib import Path

    run_dir = Path(__file__).resolve().parent.parent / "results" / "reference-cpu-2026-11-29"
    found = records.read_dirs([run_dir])
    assert {"flax-linen", "torch", "tensorflow"} <= {r["backend"] for r in found}
    assert all(r.get("backend_as_recorded", "jax") == "jax" for r in found if r["backend"] == "flax-linen")


def test_fastest_selects_each_implementations_fastest_proven_mode():
    assert registry.select_modes("torch", "fastest") == ("tuned",)
    assert registry.select_modes("keras-torch", "fastest") == ("fit",)  # no fastest_mode: the default
    assert registry.select_modes("flax-nnx", "default,fastest") == ("nnx-jit", "tuned")
    with pytest.raises(registry.UnknownMode, match="'quickest'.*'fastest'"):
        registry.select_modes("torch", "quickest")


def test_a_fastest_mode_must_be_one_of_the_modes():
    with pytest.raises(SpecError, match="fastest_mode 'turbo' is not one of modes"):
        ImplementationSpec(name="x", fastest_mode="turbo", **MINIMAL)


def test_the_run_command_runs_every_built_in_implementation_but_the_oracle_by_default():
    from mnist_bench.bench import cli

    args = cli.build_parser().parse_args(["run"])
    assert args.backends.split(",") == registry.default_names()
    assert {"torch", "tensorflow", "flax-linen", "flax-nnx", "keras-jax", "keras-torch",
            "keras-tensorflow"} <= set(registry.default_names()) and "numpy" not in registry.default_names()


def test_a_layer_names_what_it_is_and_what_it_is_over():
    with pytest.raises(SpecError, match="layer and layer_over go together"):
        ImplementationSpec(name="x", layer="Keras", **MINIMAL)
    assert registry.spec("keras-torch").layer_over == "torch" and registry.spec("flax-nnx").layer_over == "flax-linen"
    assert all(registry.spec(n).layer_over in registry.names() for n in registry.names() if registry.spec(n).layer)
