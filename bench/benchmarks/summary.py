"""Reading a saved benchmark run and rendering its side-by-side tables (``summary.md``).

A run of one pass saves ``<backend>.json``; a run of N interleaved passes
(``--repeat N``) saves ``<backend>.pass<k>.json``, and its tables give each
(backend, mode) the median over passes and its ratio to the fastest with a paired
interval (:func:`mnist_bench.bench.results.stats.paired_ratio`: pass k of one paired with pass k of the
other). Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from mnist_bench.bench.results import formatting, stats
from mnist_bench.bench.benchmarks import suite, sweep
from mnist_bench.common import precision as numeric
from mnist_bench.common import registry

PEAK_FILE = "peak.json"
SUMMARY_FILE = "summary.md"
PASS_STEM = re.compile(r"^(?P<backend>[a-z][a-z0-9-]*)\.pass(?P<number>\d+)$")  # names as common/spec.py allows
# Inside one pytest process the benchmarks run in pytest's order (one test function's
# parameters after another) and each benchmark's rounds back to back: checked with
# --collect-only, e.g. train[eager-b64], train[eager-b512], train[tuned-b64], ..., eval[eager-b64], ...
ORDER_NOTE = ("Inside one pytest process nothing is interleaved: each benchmark's rounds run back to back, every "
              "training step before every evaluation step, mode after mode, and a mode's batch sizes one after the "
              "other. Only passes (`--repeat N`) interleave: every backend, mode and batch size once per pass.")


def result_stem(backend: str, pass_number: int, passes: int) -> str:
    """``torch`` for a single-pass run (so ``--compare`` finds ``<backend>.json``), else ``torch.pass2``."""
    return backend if passes == 1 else f"{backend}.pass{pass_number}"


def load_run(run_dir: Path) -> dict[str, dict]:
    """``{backend: pytest-benchmark JSON}`` for every ``<backend>.json`` in ``run_dir``."""
    found = {}
    for path in sorted(Path(run_dir).glob("*.json")):
        if path.stem in registry.names() or path.stem in registry.aliases():  # a saved run may use a former name
            found[registry.canonical(path.stem)] = json.loads(path.read_text(encoding="utf-8"))
    return found


def load_passes(run_dir: Path) -> dict[str, dict[int, dict]]:
    """``{backend: {pass: JSON}}``: ``<backend>.json`` is pass 1, ``<backend>.pass<k>.json`` pass k."""
    found: dict[str, dict[int, dict]] = {}
    for path in sorted(Path(run_dir).glob("*.json")):
        match = PASS_STEM.match(path.stem)
        backend, number = (match["backend"], int(match["number"])) if match else (path.stem, 1)
        if backend in registry.names() or backend in registry.aliases():  # a saved run may use a former name
            found.setdefault(registry.canonical(backend), {})[number] = json.loads(path.read_text(encoding="utf-8"))
    return found


def contention_mark(block: dict | None) -> str:
    """`` ⚠ contended 43 %`` when other processes used more than the threshold of the CPUs during the rounds."""
    if block and block.get("contended"):
        return f" ⚠ contended {formatting.percent(block['other_share'], 0)}"
    return ""


def _groups(documents) -> dict[tuple[str, int, str], list[dict]]:
    """Benchmarks by (step, batch size, precision): a bf16 figure is never ranked among fp32 ones."""
    groups: dict[tuple[str, int, str], list[dict]] = {}
    for document in documents:
        for bench in document.get("benchmarks", []):
            info = bench.get("extra_info") or {}
            key = (info.get("step", "?"), info.get("batch_size", 0), info.get("precision", numeric.DEFAULT))
            groups.setdefault(key, []).append(info)
    order = {step: index for index, step in enumerate(suite.STEP_KINDS)}
    ranks = {name: index for index, name in enumerate(numeric.NAMES)}
    return dict(sorted(groups.items(), key=lambda item: (order.get(item[0][0], 9), item[0][1],
                                                         ranks.get(item[0][2], 9))))


def tagged_infos(passes: dict[str, dict[int, dict]]) -> list[dict]:
    """Every benchmark's ``extra_info`` in the run, with the pass it ran in as ``pass``."""
    return [{**(bench.get("extra_info") or {}), "pass": number}
            for by_pass in passes.values() for number, document in by_pass.items()
            for bench in document.get("benchmarks", [])]


def _single_pass_tables(documents: list[dict]) -> list[str]:
    lines = []
    for (step, batch, precision), rows in _groups(documents).items():
        lines += [f"### {suite.group_name(step, batch, precision)}", "",
                  "| backend | mode | device | samples/s (median) | samples/s (best) | GFLOP/s | % of peak | peak source |",
                  "|---|---|---|---:|---:|---:|---:|---|"]
        for info in sorted(rows, key=lambda row: -(row.get("samples_per_s") or 0)):
            fraction = info.get("fraction_of_peak")
            lines.append(f"| {info.get('backend')} | {info.get('mode')}{' (known broken)' if info.get('known_broken') else ''}"
                         f" | {info.get('device')} | {formatting.number(info.get('samples_per_s'))}"
                         f"{contention_mark(info.get('contention'))} | "
                         f"{formatting.number(info.get('samples_per_s_best'))} | {formatting.number(info.get('gflops'))} | "
                         f"{formatting.percent(fraction, 1)} | {info.get('peak_source') or formatting.MISSING} |")
        lines.append("")
    return lines


def _pass_tables(passes: dict[str, dict[int, dict]]) -> list[str]:
    """Per (step, batch size): each (backend, mode)'s median over passes, and fastest ÷ it with a paired interval."""
    lines = []
    tagged = [{**document, "benchmarks": [{**bench, "extra_info": {**bench.get("extra_info", {}), "pass": number}}
                                          for bench in document.get("benchmarks", [])]}
              for by_pass in passes.values() for number, document in by_pass.items()]
    for (step, batch, precision), infos in _groups(tagged).items():
        rows: dict[tuple[str, str], dict[int, dict]] = {}
        for info in infos:
            if info.get("samples_per_s"):
                rows.setdefault((info.get("backend"), info.get("mode")), {})[info["pass"]] = info
        if not rows:
            continue
        medians = {row: statistics.median(info["samples_per_s"] for info in by_pass.values())
                   for row, by_pass in rows.items()}
        # Ranked as the ratios are computed (geometric means), so no row is "faster than the fastest".
        geometric = {row: statistics.geometric_mean(info["samples_per_s"] for info in by_pass.values())
                     for row, by_pass in rows.items()}
        fastest = max(geometric, key=geometric.get)
        lines += [f"### {suite.group_name(step, batch, precision)}", "",
                  "| backend | mode | samples/s (median of passes) | each pass | fastest ÷ this (geometric mean, paired 95 % interval) "
                  "| % of peak (median) | contended passes |",
                  "|---|---|---:|---|---|---:|---|"]
        for row in sorted(rows, key=lambda row: -geometric[row]):
            by_pass = rows[row]
            shared = sorted(rows[fastest].keys() & by_pass.keys())
            if row == fastest:
                versus = "fastest"
            else:
                versus = stats.paired_ratio([rows[fastest][k]["samples_per_s"] for k in shared],
                                            [by_pass[k]["samples_per_s"] for k in shared]).text()
            fractions = [info["fraction_of_peak"] for info in by_pass.values() if info.get("fraction_of_peak")]
            busy = [f"pass {k}{contention_mark(info.get('contention'))}" for k, info in sorted(by_pass.items())
                    if (info.get("contention") or {}).get("contended")]
            lines.append(f"| {row[0]} | {row[1]} | {formatting.number(medians[row])} | "
                         f"{', '.join(formatting.number(by_pass[k]['samples_per_s']) for k in sorted(by_pass))} | {versus} | "
                         f"{formatting.percent(statistics.median(fractions) if fractions else None, 1)} | "
                         f"{'; '.join(busy) or 'none'} |")
        lines.append("")
    return lines


def _machine_table(passes: dict[str, dict[int, dict]]) -> list[str]:
    """What the driver saw before each pytest process, in the order they ran."""
    runs = sorted(((document.get("datetime", ""), backend, number, (document.get("mnist_bench") or {}).get("quiet_wait"))
                   for backend, by_pass in passes.items() for number, document in by_pass.items()))
    if not any(wait for *_, wait in runs):
        return []
    lines = ["### The machine before each pytest process", "",
             "| ran | backend | pass | other CPU use | on CPUs | waited | |", "|---:|---|---:|---:|---|---:|---|"]
    for index, (_, backend, number, wait) in enumerate(runs, start=1):
        if not wait:
            lines.append(f"| {index} | {backend} | {number} | " + " | ".join([formatting.MISSING] * 3) + " | not checked |")
            continue
        verdict = "quiet" if wait.get("quiet") else "⚠ busy: went on, its figures are contended"
        lines.append(f"| {index} | {backend} | {number} | {formatting.percent(wait.get('other_share'), 0)} | "
                     f"{','.join(map(str, wait.get('cpus') or []))} | {wait.get('waited_s', 0):g} s | {verdict} |")
    return lines + [""]


def _untimed(passes: dict[str, dict[int, dict]]) -> list[str]:
    untimed = {(backend, outcome["test"]): outcome for backend, by_pass in passes.items()
               for document in by_pass.values()
               for outcome in (document.get("mnist_bench") or {}).get("outcomes", []) if outcome["outcome"] != "passed"}
    if not untimed:
        return []
    lines = ["### Not timed", "", "| backend | benchmark | outcome | reason |", "|---|---|---|---|"]
    for (backend, test), outcome in untimed.items():
        reason = " ".join(str(outcome.get("reason") or "").split())[:300].replace("|", "\\|")
        lines.append(f"| {backend} | {test.split('::')[-1]} | {outcome['outcome']} | {reason} |")
    return lines + [""]


def table(run_dir: Path) -> str:
    """Markdown: per (step, batch size) one table, backends side by side, fastest first; the machine; what was not timed."""
    passes = load_passes(run_dir)
    if not passes:
        raise suite.SuiteError(f"{run_dir}: holds no <backend>.json or <backend>.pass<k>.json benchmark results")
    lines = []
    peak_path = Path(run_dir) / PEAK_FILE
    if peak_path.is_file():
        cpu = json.loads(peak_path.read_text(encoding="utf-8"))
        lines += [f"fp32 matmul peak (NumPy, {cpu.get('threads')} threads, {cpu.get('blas')}): "
                  f"{formatting.number(cpu['gflops'])} GFLOP/s", ""]
    count = max(len(by_pass) for by_pass in passes.values())
    passes_note = f"{count} interleaved passes." if count > 1 else "One pass."
    lines += [f"{passes_note} {ORDER_NOTE}", ""]
    if count > 1:
        lines += _pass_tables(passes)
    else:
        lines += _single_pass_tables([document for by_pass in passes.values() for document in by_pass.values()])
    infos = tagged_infos(passes)
    lines += sweep.precision_lines(infos) + sweep.scaling_lines(infos)
    if (Path(run_dir) / sweep.PLOT_FILE).is_file():
        lines += [f"![samples/s against batch size]({sweep.PLOT_FILE})", ""]
    return "\n".join(lines + _machine_table(passes) + _untimed(passes))
