"""A run directory's plan (``manifest.json``) and the rules for adding to a directory that already has one.

A run directory holds one sweep's results, measured one way, and never loses an ok
result to a sweep that did not replace it:

* ``--out DIR`` starts a new plan. A directory that already holds run records is
  refused; the ways out are ``--resume DIR``, another ``--out``, or ``--overwrite``.
* ``--out DIR --overwrite`` re-runs the requested runs in place. The settings that
  change a figure (:data:`SETTINGS`) must match the manifest, so one directory
  never mixes recipes; each earlier record is replaced only when its run's new
  record is written (the harness's rule for interrupted runs is in
  :mod:`mnist_bench.bench.run.harness`).
* ``--resume DIR`` completes the plan in ``manifest.json``: the requested settings
  *and* run list must match it. ``--resume DIR --extend`` may add runs (same
  settings) and completes the whole, larger plan.

A refusal lists every difference. The manifest is never rewritten silently: a
sweep that adds to it keeps its first session and appends its own to ``sessions``.
Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mnist_bench.common import records

MANIFEST = "manifest.json"
# What a sweep was told that changes a figure in its records. The run list (backends,
# modes, device kinds, device counts, seeds) is checked apart, run by run.
SETTINGS = ("recipe", "threads", "chunk_steps", "target_accuracy", "peak_probe", "mnist_bench_version")


class DirectoryRefused(ValueError):
    """The requested sweep may not write into this run directory; the message says why and the ways out."""


def settings(config, info: dict) -> dict:
    """The :data:`SETTINGS` of a ``SweepConfig`` (``info``: this mnist-bench's version block)."""
    return {"recipe": config.recipe.to_dict(), "threads": config.threads, "chunk_steps": config.chunk_steps,
            "target_accuracy": config.target_accuracy, "peak_probe": config.peak_probe,
            "mnist_bench_version": info.get("version")}


def read_manifest(run_dir: Path) -> dict | None:
    """``run_dir``'s manifest, or None when it has none; :class:`DirectoryRefused` when it is unreadable."""
    path = run_dir / MANIFEST
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DirectoryRefused(f"{path}: unreadable ({exc}); this directory's plan cannot be checked: "
                               "choose another --out") from None
    if not isinstance(document, dict) or not isinstance(document.get("runs"), list) or "recipe" not in document:
        raise DirectoryRefused(f"{path}: not an mnist-bench manifest (no 'runs' list or 'recipe'); "
                               "choose another --out")
    return document


def _shown(value) -> str:
    return json.dumps(value, sort_keys=True)


def setting_differences(manifest: dict, wanted: dict) -> list[str]:
    """One line per setting that differs; settings an older manifest does not record are not compared."""
    lines = []
    for key in SETTINGS:
        if key not in manifest or manifest[key] == wanted[key]:
            continue
        old, new = manifest[key], wanted[key]
        if isinstance(old, dict) and isinstance(new, dict):
            lines += [f"{key}.{field}: {_shown(old.get(field))} in {MANIFEST}, {_shown(new.get(field))} requested"
                      for field in sorted(old.keys() | new.keys()) if old.get(field) != new.get(field)]
        else:
            lines.append(f"{key}: {_shown(old)} in {MANIFEST}, {_shown(new)} requested")
    return lines


def run_differences(manifest: dict, specs) -> tuple[list[str], list[str]]:
    """(run ids requested but not planned, run ids planned but not requested)."""
    planned, requested = list(manifest["runs"]), [spec.run_id for spec in specs]
    return [r for r in requested if r not in planned], [r for r in planned if r not in requested]


def _refusal(run_dir: Path, why: str, lines: list[str], ways_out: str) -> DirectoryRefused:
    listed = "\n".join(f"  - {line}" for line in lines)
    return DirectoryRefused(f"{why} {run_dir}:\n{listed}\n{ways_out}")


def _planned_specs(manifest: dict, requested, run_dir: Path):
    """Every run of ``manifest``'s plan as a ``RunSpec``, then the requested ones it lacks."""
    from mnist_bench.bench.run.harness import RunSpec

    by_id = {spec.run_id: spec for spec in requested}
    known = {RunSpec(**fields).run_id: RunSpec(**fields) for fields in manifest.get("specs", [])}
    unknown = [run_id for run_id in manifest["runs"] if run_id not in by_id and run_id not in known]
    if unknown:
        raise _refusal(run_dir, "an older mnist-bench wrote the plan of", [", ".join(unknown)],
                       "its manifest names these runs without their settings: request them too, with the options "
                       "that planned them")
    planned = [by_id.get(run_id) or known[run_id] for run_id in manifest["runs"]]
    return planned + [spec for spec in requested if spec.run_id not in manifest["runs"]]


def prepare(config, info: dict, action: str, command: str, now: str) -> tuple[list, dict]:
    """Check the request against ``config.run_dir``; return (the runs to go through, the manifest to write).

    ``action`` is ``out``, ``overwrite``, ``resume`` or ``extend``. Raises
    :class:`DirectoryRefused` listing every difference, before anything is written.
    """
    run_dir, specs = config.run_dir, list(config.specs)
    manifest = read_manifest(run_dir)
    held = records.record_paths(run_dir)
    wanted = settings(config, info)
    session = {"action": action, "command": command, "started_at": now, "timeout_s": config.timeout_s}
    fresh = {"command": command, "created_at": now, **wanted, "timeout_s": config.timeout_s,
             "runs": [spec.run_id for spec in specs], "specs": [asdict(spec) for spec in specs],
             "sessions": [session]}
    if action == "out":
        if held:
            raise DirectoryRefused(
                f"run directory {run_dir} already holds {len(held)} run record(s); a run directory never loses a "
                f"result. Complete its plan with --resume {run_dir}, start a new sweep with another --out (or none: "
                f"a fresh results/runs/<UTC time>), or re-measure its runs in place with --out {run_dir} "
                "--overwrite (each record is replaced only when its new one is written)")
        return specs, fresh
    if manifest is None:
        if action == "overwrite" and not held:
            return specs, fresh
        raise DirectoryRefused(
            f"run directory {run_dir} has no {MANIFEST}, so what its records measured cannot be checked against this "
            "request; choose another --out")
    lines = setting_differences(manifest, wanted)
    added, dropped = run_differences(manifest, specs)
    if action == "resume":
        lines += [f"runs requested but not in {MANIFEST}: {', '.join(added)}"] if added else []
        lines += [f"runs in {MANIFEST} not requested: {', '.join(dropped)}"] if dropped else []
        if lines:
            raise _refusal(run_dir, "--resume: this request differs from the plan of", lines,
                           "Give the options that planned it (its command is in manifest.json); to add runs with "
                           "the same settings, add --extend; for anything else, choose another --out")
        planned = _planned_specs(manifest, specs, run_dir)
    else:
        if lines:
            raise _refusal(run_dir, f"--{action}: these settings differ from those that measured", lines,
                           "One run directory holds one way of measuring: give the same settings, or choose "
                           "another --out")
        planned = _planned_specs(manifest, specs, run_dir) if action == "extend" else specs
    merged = {**manifest, "runs": list(dict.fromkeys([*manifest["runs"], *(spec.run_id for spec in specs)]))}
    fields_of = {_run_id(fields): fields for fields in manifest.get("specs", [])}
    fields_of.update({spec.run_id: asdict(spec) for spec in specs})
    merged["specs"] = [fields_of[run_id] for run_id in merged["runs"] if run_id in fields_of]
    merged["sessions"] = [*manifest.get("sessions", []), {**session, "added": added}]
    return planned, merged


def _run_id(fields: dict) -> str:
    from mnist_bench.bench.run.harness import RunSpec

    return RunSpec(**fields).run_id
