"""A property of the whole CLI: whatever the arguments and recipe files, it ends in a known way.

Hypothesis generates argument lists for every subcommand (run, report, compare,
export-csv, parity, backends) and recipe files (TOML, not TOML, not UTF-8, nested,
with a byte-order mark). The only outcomes allowed: exit 0; 1 (a run failed, and
its record says so; or compare found a regression); 2 (bad input, with a message
on stderr); 130 (interrupted); and for compare 3 (it could not judge a speed).
Anything else, an exception out of ``cli.main`` or a traceback on stderr, fails.

Everything runs in-process through :func:`cli.main`. To stay fast, the first test
gives ``run`` and ``parity`` a data directory that is empty, with every download
mirror a closed local port, so no valid command gets past the data check (exit 2)
and no worker starts; the second test lets a handful of tiny NumPy sweeps (64
images, one run each) train for real. Examples are bounded and derandomized: the
same inputs every time. In CI together about a minute (see CI_BUDGET_S).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mnist_bench.bench import cli
from mnist_bench.common import datasets, records
from mnist_bench.common import recipe as recipes
from record_factory import make_record, write_run_dir

pytestmark = pytest.mark.timeout(300)

ALLOWED = {0, 1, 2, 130}
COMPARE_ALLOWED = ALLOWED | {3}  # INCONCLUSIVE: a speed measured on a busy machine is not judged

_counter = itertools.count()

# --- values: some valid, most not ---------------------------------------------------------------------

NUMBERS = st.sampled_from(["0", "1", "2", "-1", "3", "64", "0.5", "1e3", "inf", "-inf", "nan", "", "x", "１",
                           str(2**32), str(2**64), "99999999999999999999999", " 1 ", "0x10"])
# Half the time a value an option accepts, so that commands get past argparse to the later checks.
COUNTS = st.one_of(st.sampled_from(["1", "2"]), NUMBERS)
SECONDS = st.one_of(st.sampled_from(["0.5", "30"]), NUMBERS)
SMALL_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
FIELDS = [f for f in recipes.Recipe.__dataclass_fields__]
# Values small enough that a recipe they make trains in moments: no field may ask for a large model or set.
RECIPE_VALUES = st.sampled_from(["0", "1", "-1", "2", "16", "64", "0.01", "0.5", "0.99", "1.5", "nan", "inf",
                                 "mnist", "fashion-mnist", "cifar", "shared", "native", "", "abc", "[/red]"])


def option(name: str, values) -> st.SearchStrategy[list[str]]:
    return values.map(lambda value: [name, value] if not value.startswith("-") else [f"{name}={value}"])


def optional(strategy) -> st.SearchStrategy[list[str]]:
    return st.one_of(st.just([]), strategy)


def toml_value():
    scalars = st.one_of(st.integers(-3, 70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                        SMALL_TEXT, st.sampled_from(["mnist", "quick"]))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.sampled_from(["a", "b"]), inner,
                                                                         max_size=2)), max_leaves=6)


def _toml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {_toml_scalar(v)}" for k, v in value.items()) + "}"


def recipe_bytes() -> st.SearchStrategy[bytes]:
    keys = st.sampled_from([*FIELDS, "warp_speed", "recipe"])
    table = st.dictionaries(keys, toml_value(), max_size=4)
    as_toml = st.tuples(table, st.booleans(), st.booleans()).map(
        lambda t: (b"\xef\xbb\xbf" if t[2] else b"") + (("[recipe]\n" if t[1] else "")
                                                       + "".join(f"{k} = {_toml_scalar(v)}\n" for k, v in t[0].items())
                                                       ).encode("utf-8"))
    nested = st.integers(1, 3000).map(lambda depth: ("epochs = " + "[" * depth + "]" * depth + "\n").encode())
    return st.one_of(as_toml, nested, st.binary(max_size=40), SMALL_TEXT.map(lambda s: s.encode("utf-8")))


# --- places ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def places(tmp_path_factory, shared_data_dir):
    root = tmp_path_factory.mktemp("cli-property")
    good = write_run_dir(root, [make_record(seed=0), make_record(seed=1)], "good")
    slower = write_run_dir(root, [make_record(seed=0, samples_per_s=500.0), make_record(seed=1, samples_per_s=500.0)],
                           "slower")
    (root / "afile").write_text("not a directory", encoding="utf-8")
    (root / "empty").mkdir()
    (root / "bad").mkdir()
    (root / "bad" / f"x{records.RECORD_SUFFIX}").write_text("{", encoding="utf-8")
    return {"root": root, "good": good, "slower": slower, "afile": root / "afile", "empty": root / "empty",
            "bad": root / "bad", "missing": root / "missing", "under_file": root / "afile" / "x",
            "proc": Path("/proc/mnist-bench-x"), "parent": root, "data": shared_data_dir}


def pick(names: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(names)


RUN_DIRS = ["good", "slower", "missing", "empty", "afile", "bad", "parent"]
OUTS = ["fresh", "afile", "under_file", "proc", "empty", "good"]


def where(places: dict, name: str) -> str:
    if name == "fresh":
        return str(places["root"] / f"out-{next(_counter)}")
    return str(places[name])


# --- running -----------------------------------------------------------------------------------------


def call(argv: list[str]) -> tuple[int, str, str]:
    """``cli.main(argv)`` with stdout and stderr captured; SIGTERM's handler restored (``run`` sets it)."""
    out, err = io.StringIO(), io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
                code = exc.code
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return code, out.getvalue(), err.getvalue()


def check_outcome(argv: list[str], code: int, out: str, err: str, allowed=ALLOWED) -> None:
    assert code in allowed, (argv, code, out, err)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    if code == 2:
        assert err.strip(), (argv, "exit 2 without a message")


def run_argv(places: dict, data, draw_parts: list[list[str]], out_name: str, recipe: bytes | None) -> list[str]:
    argv = ["run", *itertools.chain.from_iterable(draw_parts)]
    if recipe is not None:
        path = places["root"] / f"recipe-{next(_counter)}.toml"
        path.write_bytes(recipe)
        argv += ["--recipe", str(path)]
    return argv + ["--out", where(places, out_name), "--data-dir", str(data), "--quiet", "--no-peak-probe",
                   "--no-require-quiet"]


RUN_OPTIONS = st.lists(st.one_of(
    option("--backends", st.sampled_from(["numpy", "", " , ", "mxnet", "numpy,mxnet", "numpy,numpy", "[/red]"])),
    option("--modes", st.sampled_from(["default", "all", "float32", "float64,float32", "eager", "compiled", "xla",
                                       "turbo", ""])),
    option("--device", st.sampled_from(["cpu", "auto", "gpu", "tpu", "quantum"])),
    option("--devices", st.sampled_from(["1", "2", "0", "1,2", "x", ""])),
    option("--hosts", st.one_of(st.just("1"), NUMBERS)), option("--host-rank", st.one_of(st.just("0"), NUMBERS)),
    option("--coordinator", st.sampled_from(["localhost:1", "nohost", ":0", ""])),
    option("--seeds", COUNTS), option("--first-seed", st.one_of(st.sampled_from(["0", "5"]), NUMBERS)),
    option("--preset", st.sampled_from(["quick", "default", "huge"])),
    st.tuples(st.sampled_from([*FIELDS, "nosuchkey"]), RECIPE_VALUES).map(lambda kv: ["--set", f"{kv[0]}={kv[1]}"]),
    st.just(["--set", "novalue"]),
    option("--epochs", COUNTS), option("--threads", COUNTS), option("--timeout", SECONDS),
    option("--chunk-steps", COUNTS), option("--target-accuracy", st.one_of(st.just("0.5"), NUMBERS)),
    option("--quiet-wait", SECONDS),
    option("--if-busy", st.sampled_from(["proceed", "stop", "maybe"])),
    st.sampled_from([["--report"], ["--allow-known-broken"], ["--require-quiet"], ["--bogus"], ["-h"]]),
), max_size=5)


@pytest.fixture(scope="module")
def no_network():
    """Every download mirror is a closed port on 127.0.0.1: a missing data set fails at once, offline."""
    from test_download import closed_port_url

    saved = dict(datasets.MIRRORS)
    for name in datasets.DATASET_NAMES:
        datasets.MIRRORS[name] = (closed_port_url(),)
    yield
    datasets.MIRRORS.update(saved)


@st.composite
def any_command(draw, places):
    command = draw(st.sampled_from(["run", "run", "run", "report", "compare", "export-csv", "parity", "backends",
                                    "nosuch"]))
    if command == "run":
        parts = draw(RUN_OPTIONS)
        # Always the data directory without data: whatever passes every option check stops at the data check.
        argv = run_argv(places, places["empty"], parts, draw(pick(OUTS)),
                        draw(st.one_of(st.none(), recipe_bytes())))
        if draw(st.booleans()):  # --resume instead of --out (argparse refuses both)
            at = argv.index("--out", len(argv) - 8)  # the one run_argv added
            argv = argv[:at] + argv[at + 2:] + ["--resume", where(places, draw(pick(RUN_DIRS)))]
        return argv
    if command == "report":
        dirs = draw(st.lists(pick(RUN_DIRS), min_size=0, max_size=2))
        return ["report", *(where(places, d) for d in dirs), *draw(optional(option("--out", pick(OUTS).map(
            lambda name: where(places, name))))), *draw(optional(st.just(["--strict"])))]
    if command == "compare":
        count = draw(st.sampled_from([2, 2, 2, 0, 1, 3]))  # BASE and NEW, mostly
        dirs = draw(st.lists(pick(["good", "slower"] * 3 + RUN_DIRS), min_size=count, max_size=count))
        return ["compare", *(where(places, d) for d in dirs),
                *draw(optional(option("--threshold", NUMBERS))), *draw(optional(option("--accuracy-threshold", NUMBERS))),
                *draw(optional(st.just(["--allow-contended"])))]
    if command == "export-csv":
        return ["export-csv", *(where(places, d) for d in draw(st.lists(pick(RUN_DIRS), max_size=2))),
                *draw(optional(option("--out", pick(OUTS).map(lambda name: where(places, name) + ".csv"
                                                              if name == "fresh" else where(places, name)))))]
    if command == "parity":
        parts = draw(st.lists(st.one_of(
            option("--backends", st.sampled_from(["numpy", "mxnet", ""])),
            option("--modes", st.sampled_from(["all", "float64", "turbo"])),
            option("--device", st.sampled_from(["cpu", "auto", "gpu"])), option("--threads", COUNTS),
            option("--out", pick(OUTS).map(lambda name: where(places, name)))), max_size=4))
        return ["parity", *itertools.chain.from_iterable(parts), "--data-dir", str(places["empty"])]
    if command == "backends":
        return ["backends", *draw(st.lists(st.sampled_from(["--x", "extra"]), max_size=1))]
    return [command]


@settings(max_examples=250, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_command_ends_in_a_known_way(places, no_network, data):
    argv = data.draw(any_command(places))
    code, out, err = call(argv)
    check_outcome(argv, code, out, err, COMPARE_ALLOWED if argv[0] == "compare" else ALLOWED)
    if argv[0] == "run" and code == 2 and "--out" in argv:
        out_dir = Path(argv[argv.index("--out") + 1])
        assert not (out_dir.name.startswith("out-") and out_dir.exists()), (argv, "refused, yet a run directory made")


# --- a few real sweeps ---------------------------------------------------------------------------------

TINY = ["--backends", "numpy", "--set", "train_limit=64", "--set", "test_limit=64", "--set", "epochs=1",
        "--set", "batch_size=32", "--set", "eval_batch_size=64"]


@settings(max_examples=4, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# A run that fails (killed at its timeout), so exit 1 with its record is always among the outcomes.
@example(parts=[["--timeout=0.5"]])
@given(parts=st.lists(st.one_of(
    option("--modes", st.sampled_from(["float64", "float32"])),
    option("--device", st.sampled_from(["cpu", "auto"])),
    option("--first-seed", st.sampled_from(["0", "7", str(2**32 - 1)])),
    option("--timeout", st.sampled_from(["0.5", "120"])),
    option("--chunk-steps", st.sampled_from(["1", "3"])),
    option("--target-accuracy", st.sampled_from(["0.1", "1"])),
    st.just(["--report"]),
), max_size=3))
def test_tiny_sweeps_end_with_a_record_per_run(places, parts):
    """Runs that really train (64 images, one run): exit 0, or 1 with every run's record saying why."""
    out_dir = places["root"] / f"sweep-{next(_counter)}"
    argv = ["run", *itertools.chain.from_iterable(parts), *TINY, "--seeds", "1", "--out", str(out_dir),
            "--data-dir", str(places["data"]), "--quiet", "--no-peak-probe", "--no-require-quiet"]
    code, out, err = call(argv)
    check_outcome(argv, code, out, err)
    if code in (0, 1):
        found = records.read_dirs([out_dir])
        assert len(found) == 1, (argv, found)
        assert (found[0]["status"] == "ok") == (code == 0), (argv, found[0]["status"], found[0].get("error"))
