"""Reading a saved benchmark run and rendering its side-by-side tables (``summary.md``).

Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.benchmarks import suite
from common import registry

PEAK_FILE = "peak.json"
SUMMARY_FILE = "summary.md"


def load_run(run_dir: Path) -> dict[str, dict]:
    """``{backend: pytest-benchmark JSON}`` for every ``<backend>.json`` in ``run_dir``."""
    found = {}
    for path in sorted(Path(run_dir).glob("*.json")):
        if path.stem in registry.BACKENDS:
            found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return found


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def contention_mark(block: dict | None) -> str:
    """`` ⚠ contended 43 %`` when other processes used more than the threshold of the CPUs during the rounds."""
    if block and block.get("contended"):
        return f" ⚠ contended {block['other_share'] * 100:.0f} %"
    return ""


def table(run_dir: Path) -> str:
    """Markdown: per (step, batch size) one table, backends side by side, fastest first; then what was not timed."""
    results = load_run(run_dir)
    if not results:
        raise suite.SuiteError(f"{run_dir}: holds no <backend>.json benchmark results")
    lines = []
    peak_path = Path(run_dir) / PEAK_FILE
    if peak_path.is_file():
        cpu = json.loads(peak_path.read_text(encoding="utf-8"))
        lines += [f"fp32 matmul peak (NumPy, {cpu.get('threads')} threads, {cpu.get('blas')}): "
                  f"{_fmt(cpu['gflops'])} GFLOP/s", ""]
    groups: dict[tuple[str, int], list[dict]] = {}
    for document in results.values():
        for bench in document.get("benchmarks", []):
            info = bench.get("extra_info") or {}
            groups.setdefault((info.get("step", "?"), info.get("batch_size", 0)), []).append(info)
    order = {step: index for index, step in enumerate(suite.STEP_KINDS)}
    for (step, batch), rows in sorted(groups.items(), key=lambda item: (order.get(item[0][0], 9), item[0][1])):
        lines += [f"### {suite.group_name(step, batch)}", "",
                  "| backend | mode | device | samples/s (median) | samples/s (best) | GFLOP/s | % of peak | peak source |",
                  "|---|---|---|---:|---:|---:|---:|---|"]
        for info in sorted(rows, key=lambda row: -(row.get("samples_per_s") or 0)):
            fraction = info.get("fraction_of_peak")
            lines.append(f"| {info.get('backend')} | {info.get('mode')}{' (known broken)' if info.get('known_broken') else ''}"
                         f" | {info.get('device')} | {_fmt(info.get('samples_per_s'))}{contention_mark(info.get('contention'))} | "
                         f"{_fmt(info.get('samples_per_s_best'))} | {_fmt(info.get('gflops'))} | "
                         f"{'—' if fraction is None else f'{fraction * 100:.1f} %'} | {info.get('peak_source') or '—'} |")
        lines.append("")
    untimed = [(backend, outcome) for backend, document in results.items()
               for outcome in (document.get("mnist_bench") or {}).get("outcomes", []) if outcome["outcome"] != "passed"]
    if untimed:
        lines += ["### Not timed", "", "| backend | benchmark | outcome | reason |", "|---|---|---|---|"]
        for backend, outcome in untimed:
            reason = " ".join(str(outcome.get("reason") or "").split())[:300].replace("|", "\\|")
            lines.append(f"| {backend} | {outcome['test'].split('::')[-1]} | {outcome['outcome']} | {reason} |")
        lines.append("")
    return "\n".join(lines)
