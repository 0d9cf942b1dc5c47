"""compare: matching, the regression rules and the exit code."""

import pytest

from mnist_bench.bench.results.compare import compare
from record_factory import make_record, write_run_dir

RATES = {"torch": 1500.0, "tensorflow": 900.0, "flax-linen": 2000.0}


def sweep(rates=RATES, accuracy=None, seeds=range(3)) -> list[dict]:
    """Records for every backend in ``rates`` and every seed; ``accuracy`` maps backend -> accuracy."""
    accuracy = accuracy or {}
    return [
        make_record(backend=backend, seed=seed, samples_per_s=rate, accuracy=accuracy.get(backend, 0.98))
        for backend, rate in rates.items()
        for seed in seeds
    ]


def test_same_numbers_pass(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, sweep(), "new")
    result = compare([base], [new])
    assert not result.regressed and result.exit_code == 0
    assert len(result.matches) == 9 and all(match.seed is not None for match in result.matches)
    assert all(match.ratio == pytest.approx(1.0) for match in result.matches)
    assert "OK: 9 matches, no regression" in result.render()


def test_slower_backend_regresses(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, sweep({**RATES, "flax-linen": RATES["flax-linen"] * 0.8}), "new")
    result = compare([base], [new])
    assert result.regressed and result.exit_code == 1
    assert result.reasons and all(reason.startswith("flax-linen/eager/cpu seed") for reason in result.reasons)
    assert len(result.reasons) == 3 and "0.800x" in result.reasons[0]
    text = result.render()
    assert "REGRESSED: 3 of 9 matches" in text and "flax-linen/eager/cpu seed 0: training samples/s" in text


def test_within_threshold_is_not_a_regression(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, sweep({backend: rate * 0.95 for backend, rate in RATES.items()}), "new")
    assert compare([base], [new]).exit_code == 0
    assert compare([base], [new], threshold=0.04).exit_code == 1


def test_accuracy_drop_flagged(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, sweep(accuracy={"torch": 0.97}), "new")
    result = compare([base], [new])
    assert result.exit_code == 1
    assert all(reason.startswith("torch/eager/cpu") and "test accuracy" in reason for reason in result.reasons)
    assert "fell 1.00 pp" in result.reasons[0]
    # A drop within the threshold is tolerated.
    assert compare([base], [new], accuracy_threshold=0.02).exit_code == 0


def test_group_medians_when_seeds_differ(tmp_path):
    base = write_run_dir(tmp_path, sweep(seeds=range(3)), "base")
    new = write_run_dir(tmp_path, sweep({**RATES, "torch": 1000.0}, seeds=range(10, 13)), "new")
    result = compare([base], [new])
    assert len(result.matches) == 3 and all(match.seed is None for match in result.matches)
    assert [reason.split(":")[0] for reason in result.reasons] == ["torch/eager/cpu (group median)"]
    assert "group median" in result.render()


def test_failed_new_run_and_unmatched_runs(tmp_path):
    base = write_run_dir(tmp_path, sweep() + [make_record(backend="torch", mode="compiled")], "base")
    new_records = [record for record in sweep() if not (record["backend"] == "flax-linen" and record["seed"] == 2)]
    new_records[0] = make_record(backend="torch", seed=0, status="failed")
    new_records.append(make_record(backend="torch", seed=7))
    new = write_run_dir(tmp_path, new_records, "new")
    result = compare([base], [new])
    assert result.exit_code == 1
    assert result.reasons[0] == "torch/eager/cpu seed 0: base finished ok but new run(s) ended failed"
    # Finished ok in base and missing from new: regressions, never "not compared".
    assert result.missing == ["flax-linen/eager/cpu seed 2", "torch/compiled/cpu (1 runs)"]
    assert result.unmatched_base == []
    assert result.unmatched_new == ["torch/eager/cpu seed 7"]
    text = result.render()
    assert "flax-linen/eager/cpu seed 2: finished ok in base, missing from new" in text
    assert "only in new (not compared):" in text and "REGRESSED" in text


def test_a_dead_new_run_that_recorded_device_auto_is_a_regression_not_ok(tmp_path):
    # Issue 17: with --device auto, a run killed before resolving its device records "auto"; it used to
    # land in its own group, the base's cpu run was "only in base", and the verdict was OK (exit 0).
    base = write_run_dir(tmp_path, [make_record(backend="torch", seed=0)], "base")
    dead = make_record(backend="torch", seed=0, status="timeout")
    dead["device"] = "auto"
    new = write_run_dir(tmp_path, [dead], "new")
    result = compare([base], [new])
    assert result.exit_code == 1 and result.regressed
    assert result.missing == ["torch/eager/cpu (1 runs)"]
    assert "OK" not in result.render().splitlines()[-1]


def test_a_nan_accuracy_is_an_invalid_record_not_a_pass(tmp_path):
    from mnist_bench.common.records import RecordError

    base = write_run_dir(tmp_path, [make_record(backend="torch", seed=0)], "base")
    diverged = make_record(backend="torch", seed=0)
    diverged["final"]["test"]["accuracy"] = float("nan")  # JSON Schema's "number" accepts it
    new = write_run_dir(tmp_path, [diverged], "new")
    with pytest.raises(RecordError, match="final/test/accuracy: not a finite number"):
        compare([base], [new])


def test_a_base_run_that_never_finished_is_not_a_regression_when_missing(tmp_path):
    base = write_run_dir(tmp_path, [make_record(backend="torch", seed=0, status="failed")], "base")
    new = write_run_dir(tmp_path, [make_record(backend="flax-linen", seed=0)], "new")
    result = compare([base], [new])
    assert result.missing == [] and result.unmatched_base == ["torch/eager/cpu (1 runs)"]


def busy(records: list[dict], backend: str) -> list[dict]:
    """The same records, with ``backend``'s runs measured on a busy machine."""
    from record_factory import BUSY

    for record in records:
        if record["backend"] == backend:
            record["contention"] = {**record["contention"], **BUSY}
    return records


def test_slowdown_on_a_busy_machine_is_not_judged_but_never_ok(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, busy(sweep({**RATES, "flax-linen": RATES["flax-linen"] * 0.5}), "flax-linen"), "new")
    result = compare([base], [new])
    assert not result.regressed and result.exit_code == 3
    text = result.render()
    assert "INCONCLUSIVE: 3 of 9 matches" in text
    assert "flax-linen/eager/cpu seed 0: new run(s) measured on a busy machine (other processes used 43% of their CPUs)" in text
    # Asked to, it judges them, and the halved speed is a regression.
    forced = compare([base], [new], allow_contended=True)
    assert forced.regressed and forced.exit_code == 1 and len(forced.reasons) == 3


def test_accuracy_is_judged_on_a_busy_machine(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, busy(sweep(accuracy={"torch": 0.95}), "torch"), "new")
    result = compare([base], [new])
    assert result.regressed and result.exit_code == 1
    assert all("test accuracy" in reason for reason in result.reasons)


def test_cli_exit_code_for_an_inconclusive_comparison(tmp_path):
    from mnist_bench.bench import cli

    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, busy(sweep(), "torch"), "new")
    assert cli.main(["compare", str(base), str(new)]) == 3
    assert cli.main(["compare", str(base), str(new), "--allow-contended"]) == 0


# --- both sides must be measured the same way (issue 17) ------------------------------------------------


def sweep_with(**overrides) -> list[dict]:
    """:func:`sweep`'s records, with ``overrides`` deep-merged into each."""
    return [make_record(backend=backend, seed=seed, samples_per_s=rate, **overrides)
            for backend, rate in RATES.items() for seed in range(3)]


def test_different_recipes_are_refused_and_listed(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, sweep_with(recipe={"epochs": 5}), "new")
    result = compare([base], [new])
    assert result.refused and result.exit_code == 2
    text = result.render()
    assert "recipe.epochs: base 2, new 5" in text and "REFUSED" in text.splitlines()[-1]
    assert "--allow-different-recipes" in text and "OK" not in text
    allowed = compare([base], [new], allow_different=True)
    assert allowed.exit_code == 0 and not allowed.refused
    assert "measured differently (allowed by --allow-different-recipes):" in allowed.render()
    assert "recipe.epochs: base 2, new 5" in allowed.render()


def test_different_framework_or_mnist_bench_versions_are_refused(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    upgraded = sweep_with(mnist_bench={"version": "0.2.0"})
    for record in upgraded:
        if record["backend"] == "torch":
            record["versions"]["torch"] = "2.4.0"
    new = write_run_dir(tmp_path, upgraded, "new")
    result = compare([base], [new])
    assert result.exit_code == 2
    assert result.differences == ['mnist-bench version: base "0.1.0", new "0.2.0"',
                                  'torch: torch version: base "2.3.1", new "2.4.0"']
    # Runs that never built their backend carry no versions and are no difference.
    never_built = make_record(backend="torch", seed=0, status="timeout", versions={"torch": "9.9"})
    del never_built["versions"]
    dead = write_run_dir(tmp_path, [never_built], "dead")
    assert compare([base], [dead]).differences == []


def test_different_threads_are_refused(tmp_path):
    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, sweep_with(threads={"requested": 2}), "new")
    old = write_run_dir(tmp_path, sweep_with(threads={"requested": 1}), "old")
    assert compare([old], [new]).differences == ["threads: base 1, new 2"]
    assert compare([base], [new]).differences == []  # records that do not say how many threads they asked for


def test_cli_refuses_different_recipes_and_names_invalid_records(tmp_path, capsys):
    from mnist_bench.bench import cli

    base = write_run_dir(tmp_path, sweep(), "base")
    new = write_run_dir(tmp_path, sweep_with(recipe={"learning_rate": 0.05}), "new")
    assert cli.main(["compare", str(base), str(new)]) == 2
    out = capsys.readouterr().out
    assert "recipe.learning_rate: base 0.01, new 0.05" in out and "REFUSED" in out
    assert cli.main(["compare", str(base), str(new), "--allow-different-recipes"]) == 0
    capsys.readouterr()
    nan = make_record(backend="torch", seed=0)
    nan["timing"]["steady_samples_per_s"] = float("inf")
    bad = write_run_dir(tmp_path, [nan], "bad")
    assert cli.main(["compare", str(base), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "timing/steady_samples_per_s: not a finite number (NaN or infinity)" in err and "Traceback" not in err
