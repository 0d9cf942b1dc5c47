"""The Environment section: what ran, with which versions, on which machine, with which settings."""

from __future__ import annotations

import json
from typing import Any

from mnist_bench.bench.results.export import versions_text
from mnist_bench.bench.results.formatting import MISSING, byte_size
from mnist_bench.bench.results.grouping import GroupKey, GroupLabeller
from mnist_bench.bench.results.report.document import Block, Paragraph, Preformatted, Table
from mnist_bench.bench.results.report.sections import distinct
from mnist_bench.bench.results.report.side_files import LoadedRuns


def compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": ")) if value not in (None, {}) else MISSING


def _joined(values) -> str:
    return " / ".join(distinct(values))


def command_blocks(loaded: LoadedRuns) -> list[Block]:
    blocks: list[Block] = [Paragraph("Command (exact, as recorded):")]
    for run_dir, runs in loaded.runs_by_dir:
        manifest = loaded.manifests.get(run_dir)
        if manifest and manifest.get("command"):
            commands, source = [str(manifest["command"])], "manifest.json"
        else:
            commands, source = distinct(run["command"] for run in runs), "run records"
        blocks += [Paragraph(f"{run_dir} (from {source}):"), Preformatted("\n".join(commands) or MISSING)]
    return blocks


def versions_blocks(records: list[dict]) -> list[Block]:
    table = Table(["Backend", "Versions"], [])
    for backend in distinct(run["backend"] for run in records):
        texts = distinct(versions_text(run.get("versions")) for run in records if run["backend"] == backend)
        table.rows.append([backend, " / ".join(text for text in texts if text) or MISSING])
    return [Paragraph("Framework versions per backend:"), table]


def machine_rows(machine: dict) -> list[list[str]]:
    cpu = (machine.get("cpu_model") or MISSING, machine.get("cpu_id"), " ".join(machine.get("cpu_flags") or []))
    gpus = "; ".join(
        f"{gpu.get('name', '?')} ({gpu.get('memory_total_mib', '?')} MiB, driver {gpu.get('driver_version', '?')})"
        for gpu in machine.get("gpus") or []
    )
    return [
        ["CPU", " · ".join(str(part) for part in cpu if part)],
        ["Cores",
         f"{machine.get('logical_cores') or MISSING} logical, {machine.get('physical_cores') or MISSING} physical"],
        ["Memory", byte_size(machine.get("memory_total_bytes"))],
        ["GPUs", gpus or "none"],
        ["OS", str(machine.get("os") or MISSING)],
        ["Python", f"{machine.get('python') or MISSING} {machine.get('python_implementation') or ''}".strip()],
    ]


def machine_blocks(records: list[dict]) -> list[Block]:
    machines = {json.dumps(run.get("machine") or {}, sort_keys=True): run.get("machine") or {} for run in records}
    blocks: list[Block] = []
    if len(machines) > 1:
        blocks.append(Paragraph(
            f"Warning: these runs come from {len(machines)} different machines; speeds are not like for like."))
    for index, machine in enumerate(machines.values(), 1):
        heading = "Machine:" if len(machines) == 1 else f"Machine {index}:"
        blocks += [Paragraph(heading), Table(["", ""], machine_rows(machine))]
    return blocks


def settings_blocks(groups: dict[GroupKey, list[dict]], label: GroupLabeller) -> list[Block]:
    table = Table(["Group", "Threads", "Numerics", "Device"], [
        [
            label(key),
            _joined(compact_json(run.get("threads")) for run in runs),
            _joined(compact_json(run.get("numerics")) for run in runs),
            _joined(compact_json(run.get("device_info")) for run in runs),
        ]
        for key, runs in groups.items()
    ])
    return [Paragraph("Threads, numerics and device per group:"), table]


def build_paragraph(records: list[dict]) -> Paragraph:
    builds = []
    for run in records:
        info = run.get("mnist_bench") or {}
        git = info.get("git") or {}
        dirty = " (dirty)" if git.get("dirty") else ""
        commit = f"git {str(git.get('commit', '?'))[:12]}{dirty}" if git else "git unknown"
        builds.append(f"{info.get('version', '?')}, {commit}")
    return Paragraph("mnist-bench: " + "; ".join(distinct(builds)))


def recipe_blocks(groups: dict[GroupKey, list[dict]], label: GroupLabeller, records: list[dict]) -> list[Block]:
    recipes = distinct(json.dumps(run.get("recipe"), sort_keys=True) for run in records)
    if len(recipes) == 1:
        recipe = json.dumps(json.loads(recipes[0]), indent=1, sort_keys=True)
        return [Paragraph("Recipe (shared by every run):"), Preformatted(recipe)]
    if not recipes:
        return []
    return [
        Paragraph(f"Warning: the runs used {len(recipes)} different recipes; results are not directly comparable."),
        Table(["Group", "Recipe"], [
            [label(key), _joined(compact_json(run.get("recipe")) for run in runs)] for key, runs in groups.items()
        ]),
    ]


def environment_blocks(loaded: LoadedRuns, groups: dict[GroupKey, list[dict]], label: GroupLabeller) -> list[Block]:
    records = loaded.records
    if not records:
        return [Paragraph(MISSING)]
    return [
        *command_blocks(loaded),
        *versions_blocks(records),
        *machine_blocks(records),
        *settings_blocks(groups, label),
        build_paragraph(records),
        *recipe_blocks(groups, label, records),
    ]
