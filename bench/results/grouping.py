"""Runs grouped by (backend, mode, device): the unit the report and ``compare`` both judge.

Two runs belong together when they ran the same backend in the same mode on the
same kind and number of devices (:func:`mnist_bench.common.records.device_group`);
seeds are the repeats inside a group.
"""

from __future__ import annotations

from typing import Callable, Iterable

from mnist_bench.common.records import device_group

GroupKey = tuple[str, str, str]  # (backend, mode, device group)
GroupLabeller = Callable[[GroupKey], str]


def group_key(record: dict) -> GroupKey:
    return record["backend"], record["mode"], device_group(record)


def group_runs(records: Iterable[dict]) -> dict[GroupKey, list[dict]]:
    """Records by (backend, mode, device), sorted by key then seed; failed runs included."""
    groups: dict[GroupKey, list[dict]] = {}
    for record in records:
        groups.setdefault(group_key(record), []).append(record)
    return {key: sorted(groups[key], key=lambda run: (run["seed"], run["run_id"])) for key in sorted(groups)}


def finished(runs: Iterable[dict]) -> list[dict]:
    """The runs that finished ok."""
    return [run for run in runs if run["status"] == "ok"]


def group_labeller(keys: Iterable[GroupKey]) -> GroupLabeller:
    """``backend/mode``, or ``backend/mode/device`` when the runs used more than one device group."""
    several_devices = len({device for _, _, device in keys}) > 1
    return lambda key: "/".join(key if several_devices else key[:2])
