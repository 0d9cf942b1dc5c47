"""Reading a record's machine load: was the run measured on a quiet machine?

Records written before runs measured their machine have no ``contention`` block:
their quietness is unknown, which the report and ``compare`` say, rather than
assuming either way.
"""

from __future__ import annotations

from typing import Iterable

from mnist_bench.bench.results.formatting import MISSING, percent

WARNING = "⚠"


def other_share(record: dict) -> float | None:
    """The share of the run's CPUs that other processes used while it trained (None: not measured)."""
    return (record.get("contention") or {}).get("other_share")


def is_contended(record: dict) -> bool | None:
    """True or False as the run measured it; None where it did not (old records, runs that never trained)."""
    return (record.get("contention") or {}).get("contended")


def contended(records: Iterable[dict]) -> list[dict]:
    return [record for record in records if is_contended(record)]


def unmeasured(records: Iterable[dict]) -> list[dict]:
    return [record for record in records if record["status"] == "ok" and is_contended(record) is None]


def load_text(records: Iterable[dict]) -> str:
    """Others' CPU use over a group's finished runs: the largest share, marked when any run was contended."""
    finished = [record for record in records if record["status"] == "ok"]
    shares = [share for record in finished if (share := other_share(record)) is not None]
    if not shares:
        return "not recorded" if finished else MISSING
    worst = max(shares)
    flagged = sum(bool(is_contended(record)) for record in finished)
    text = percent(worst, 1)
    if flagged:
        return f"{WARNING} {text}, contended ({flagged}/{len(finished)} runs)"
    return text if len(shares) == len(finished) else f"{text} ({len(finished) - len(shares)} not recorded)"
