"""Is the machine quiet? How much of a run's CPUs went to other work while it ran.

A speed figure taken while other processes share the cores is not a figure of the
framework: on a 2-core machine, one busy process beside a run takes half of it.
So every run measures its own machine
(Linux ``/proc``; elsewhere the figures are ``None``):

* ``/proc/stat``: busy, idle and *steal* ticks of each CPU the run is pinned to;
* the CPU time of the run's own process tree (``/proc/PID/stat``, threads and
  reaped children included), and of the harness that started it;
* ``/proc/loadavg`` and the CPUs' clock (``cpufreq`` or ``/proc/cpuinfo``).

*Other* CPU use is the pinned CPUs' busy time, plus the time the hypervisor
stole, minus what the run and its harness used, as a share of those CPUs' time.
The thresholds below were chosen from measurements on this project's 2-core VM;
the figures are next to them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

VERSION = 1
TICK_S = 1 / os.sysconf("SC_CLK_TCK")  # /proc reports CPU time in these ticks

# Measured on the 2-core AMD EPYC VM (Zen 3 host) this project is developed on, 2026-11-29:
# * nothing running: other use over 60 one-second windows had median 0.0 %, p95 1.0 %, max 1.5 %
#   (``python -m mnist_bench.common.contention --windows 60``);
# * whole training loops on that quiet machine: 0.25 % (tensorflow) and 0.46 % (torch);
# * one spinning process on either core: 50-57 % of the two CPUs in every window.
# A run is *contended* above 5 %: ten times the quiet runs, a tenth of one busy core.
CONTENDED_SHARE = 0.05
# Before a run starts the machine is quiet at or below 3 % over one window: twice the
# idle maximum above, so a quiet machine never waits and a busy core (50 %) always does.
QUIET_SHARE = 0.03
QUIET_WINDOW_S = 1.0


def pinned_cpus(threads: int) -> list[int]:
    """The CPUs a run with ``threads`` threads is pinned to (the worker pins the same)."""
    return sorted(os.sched_getaffinity(0))[:threads]


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


@dataclass(frozen=True)
class CpuTicks:
    busy: int = 0
    steal: int = 0
    total: int = 0


def cpu_ticks(cpus: Iterable[int]) -> CpuTicks | None:
    """Summed ticks of ``cpus`` from ``/proc/stat`` (None where there is no such file)."""
    text = _read("/proc/stat")
    if text is None:
        return None
    wanted = {f"cpu{n}" for n in cpus}
    busy = steal = total = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name not in wanted:
            continue
        # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
        fields = [int(v) for v in rest.split()[:8]] + [0] * 8
        user, nice, system, idle, iowait, irq, softirq, stolen = fields[:8]
        busy += user + nice + system + irq + softirq
        steal += stolen
        total += user + nice + system + idle + iowait + irq + softirq + stolen
    return CpuTicks(busy, steal, total)


def _stat_fields(pid: int | str) -> list[str] | None:
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text[text.rfind(")") + 2:].split()


def process_ticks() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, own CPU ticks, reaped children's ticks) for every process."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is None or len(fields) < 15:
            continue  # exited while we looked
        # fields[1] = ppid; [11] utime, [12] stime, [13] cutime, [14] cstime (man 5 proc, counted from state)
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    return found


def tree(root: int, table: dict[int, tuple[int, int, int]]) -> list[int]:
    """``root`` and every live descendant of it in ``table``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack, seen = [], [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def tree_ticks(root: int, table: dict[int, tuple[int, int, int]]) -> int:
    """CPU ticks of ``root`` and every live descendant, plus the children they have reaped."""
    return sum(table[pid][1] + table[pid][2] for pid in tree(root, table))


def loadavg() -> list[float] | None:
    text = _read("/proc/loadavg")
    return [float(v) for v in text.split()[:3]] if text else None


def cpu_mhz(cpus: Iterable[int]) -> list[float] | None:
    """Current clock of each CPU in MHz, where the OS exposes it."""
    cpus = list(cpus)
    found = []
    for n in cpus:
        khz = _read(f"/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_cur_freq")
        if khz is None:
            break
        found.append(int(khz) / 1000)
    if len(found) == len(cpus):
        return found
    mhz = [float(line.split(":")[1]) for line in (_read("/proc/cpuinfo") or "").splitlines()
           if line.startswith("cpu MHz")]
    return [mhz[n] for n in cpus] if mhz and max(cpus, default=0) < len(mhz) else None


@dataclass
class Reading:
    at: float
    cpu: CpuTicks
    own: int
    harness: int


@dataclass(frozen=True)
class Interval:
    """CPU use on the pinned CPUs between two readings, as shares of their time."""

    seconds: float
    other: float
    steal: float
    own: float
    harness: float


def _interval(a: Reading, b: Reading) -> Interval | None:
    total = b.cpu.total - a.cpu.total
    if total <= 0:
        return None
    own, harness = b.own - a.own, b.harness - a.harness
    busy, steal = b.cpu.busy - a.cpu.busy, b.cpu.steal - a.cpu.steal
    other = max(0, busy - own - harness) + steal

    def share(ticks: int) -> float:
        # Process and CPU counters are read a moment apart and tick separately: over a short
        # interval a process can show a few more ticks than its CPUs. Shares stay in [0, 1].
        return min(1.0, max(0.0, ticks / total))

    return Interval(b.at - a.at, share(other), share(steal), share(own), share(harness))


@dataclass
class Monitor:
    """Readings of the pinned CPUs for one process tree, taken at the moments the caller picks.

    ``root`` is the run's own process (its threads and children count as its own);
    ``harness`` the process that started it, whose CPU time is reported apart.
    """

    cpus: list[int]
    root: int = field(default_factory=os.getpid)
    harness: int | None = None
    readings: list[Reading] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    started: dict = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return bool(self.readings)

    def _read(self) -> Reading | None:
        cpu = cpu_ticks(self.cpus)
        if cpu is None:
            return None
        table = process_ticks()
        harness = table[self.harness][1] if self.harness in table else 0  # its own ticks: reaped workers are not its
        return Reading(time.monotonic(), cpu, tree_ticks(self.root, table), harness)

    def start(self) -> "Monitor":
        self.started = {"loadavg": loadavg(), "cpu_mhz": cpu_mhz(self.cpus)}
        reading = self._read()
        if reading is not None:
            self.readings.append(reading)
        return self

    def sample(self) -> Interval | None:
        """Read now; return the interval since the last reading (None where /proc is missing)."""
        if not self.readings:
            return None
        reading = self._read()
        if reading is None:
            return None
        interval = _interval(self.readings[-1], reading)
        self.readings.append(reading)
        if interval is not None:
            self.intervals.append(interval)
        return interval

    def summary(self, gpu_other_processes: int | None = None) -> dict:
        """The record's ``contention`` block: whole-run shares and the worst interval."""
        block = {
            "version": VERSION,
            "cpus": self.cpus,
            "threshold": CONTENDED_SHARE,
            "loadavg_start": self.started.get("loadavg"),
            "loadavg_end": loadavg(),
            "cpu_mhz_start": self.started.get("cpu_mhz"),
            "cpu_mhz_end": cpu_mhz(self.cpus),
            "gpu_other_processes": gpu_other_processes,
            "intervals": len(self.intervals),
        }
        whole = _interval(self.readings[0], self.readings[-1]) if len(self.readings) > 1 else None
        if whole is None:
            return {**block, "other_share": None, "steal_share": None, "own_share": None, "harness_share": None,
                    "worst_interval_other_share": None, "contended_intervals": 0, "contended": None}
        worst = max(i.other for i in self.intervals)
        return {
            **block,
            "seconds": round(whole.seconds, 3),
            "other_share": round(whole.other, 4),
            "steal_share": round(whole.steal, 4),
            "own_share": round(whole.own, 4),
            "harness_share": round(whole.harness, 4),
            "worst_interval_other_share": round(worst, 4),
            "contended_intervals": sum(i.other > CONTENDED_SHARE for i in self.intervals),
            "contended": whole.other > CONTENDED_SHARE,
        }


def busiest(cpus_ticks_window: float = QUIET_WINDOW_S, exclude: Iterable[int] = (), top: int = 3) -> list[dict]:
    """The processes that used the most CPU over a window: what a quiet-wait is waiting on."""
    exclude = set(exclude)
    before = process_ticks()
    time.sleep(cpus_ticks_window)
    after = process_ticks()
    used = sorted(((after[pid][1] - before[pid][1], pid) for pid in after.keys() & before.keys()
                   if pid not in exclude), reverse=True)
    found = []
    for ticks, pid in used[:top]:
        if ticks <= 0:
            break
        raw = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()
        found.append({"pid": pid, "cpu_share": round(ticks * TICK_S / cpus_ticks_window, 3),
                      "command": raw[:120] or "?"})
    return found


def busiest_text(processes: list[dict]) -> str:
    """:func:`busiest`'s list as one line for a person."""
    return ", ".join(f"pid {p['pid']} {p['cpu_share']:.0%} {p['command']}" for p in processes) or "none seen"


def window_share(cpus: list[int], seconds: float = QUIET_WINDOW_S) -> float | None:
    """Other CPU use of ``cpus`` over ``seconds``, counting this process as ours."""
    monitor = Monitor(cpus).start()
    if not monitor.available:
        return None
    time.sleep(seconds)
    interval = monitor.sample()
    return None if interval is None else interval.other


def wait_for_quiet(cpus: list[int], max_wait_s: float, say: Callable[[str], None] = lambda text: None) -> dict:
    """Wait up to ``max_wait_s`` for ``cpus`` to be quiet; return what was seen (the record's ``quiet_wait``).

    ``say`` hears, once, what it is waiting on: the share and the busiest processes.
    """
    start = time.monotonic()
    share = window_share(cpus)
    if share is not None and share > QUIET_SHARE:
        top = busiest_text(busiest(exclude=[os.getpid()]))
        say(f"waiting up to {max_wait_s:g} s for a quiet machine: other processes used {share:.0%} of "
            f"CPUs {','.join(map(str, cpus))} (quiet is {QUIET_SHARE:.0%} or less); busiest: {top}")
    while share is not None and share > QUIET_SHARE and time.monotonic() - start < max_wait_s:
        share = window_share(cpus)
    return {"other_share": None if share is None else round(share, 4), "threshold": QUIET_SHARE,
            "quiet": share is None or share <= QUIET_SHARE, "waited_s": round(time.monotonic() - start, 2)}


def gpu_other_processes(own_pids: Iterable[int]) -> int | None:
    """Compute processes on the NVIDIA GPUs that are not ours (None where nvidia-smi cannot tell)."""
    from mnist_bench.common.machine import _run

    out = _run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"])
    if out is None:
        return None
    own = set(own_pids)
    return sum(1 for line in out.split() if line.strip().isdigit() and int(line) not in own)


def own_pids(root: int) -> list[int]:
    """``root`` and its live descendants."""
    return tree(root, process_ticks())


def main(argv: list[str] | None = None) -> int:
    """``python -m mnist_bench.common.contention``: is this machine quiet enough to measure on? One line per window."""
    import argparse
    import json
    import statistics

    parser = argparse.ArgumentParser(prog="python -m mnist_bench.common.contention", description=main.__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=30, help="1-second windows to measure (default 30)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPUs to watch")
    args = parser.parse_args(argv)
    cpus = pinned_cpus(args.threads)
    shares = []
    for _ in range(args.windows):
        share = window_share(cpus)
        if share is None:
            print("no /proc/stat here: this platform cannot be measured")
            return 1
        shares.append(share)
    quantiles = statistics.quantiles(shares, n=20) if len(shares) > 1 else shares * 19
    summary = {"cpus": cpus, "windows": len(shares), "min": min(shares), "median": statistics.median(shares),
               "p95": quantiles[18], "max": max(shares), "quiet_share": QUIET_SHARE,
               "quiet_windows": sum(share <= QUIET_SHARE for share in shares),
               "busiest_now": busiest(exclude=[os.getpid()])}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
