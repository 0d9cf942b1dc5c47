"""What SLURM says about jobs: squeue while they are queued or running, scontrol (then sacct) once they ended.

submitit reads job states with ``sacct``, which needs SLURM's accounting database;
clusters without one (the tests' cluster among them) still answer
``squeue`` and, for ``MinJobAge`` seconds after a job ends, ``scontrol show job``.
Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import subprocess

# Job states in which a job still holds, or waits for, its allocation.
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING",
          "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
TIMEOUT_S = 30


def command(argv: list[str]) -> subprocess.CompletedProcess:
    """A SLURM client command, its output captured, bounded by TIMEOUT_S."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def show(kind: str, name: str) -> dict[str, str] | None:
    """``scontrol show KIND NAME`` (a job, a node) as its KEY=VALUE fields; None when scontrol does not know it."""
    done = command(["scontrol", "--oneliner", "show", kind, name])
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return dict(item.split("=", 1) for item in done.stdout.split() if "=" in item)


def queued(job_ids: list[str]) -> dict[str, dict]:
    """State, reason and node of each of ``job_ids`` still in the queue (one line per array task)."""
    if not job_ids:
        return {}
    done = command(["squeue", "--array", "--noheader", "--format=%i|%T|%r|%N", f"--jobs={','.join(job_ids)}"])
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        raise RuntimeError(f"squeue failed: {done.stderr.strip()}")
    found = {}
    for line in done.stdout.splitlines():
        job_id, state, reason, node = (line.split("|") + ["", "", ""])[:4]
        if job_id in job_ids:
            found[job_id] = {"state": state, "reason": reason, "node": node or None}
    return found


def ended(job_id: str) -> dict:
    """How ``job_id`` ended: state (COMPLETED, CANCELLED, TIMEOUT, NODE_FAIL, ...), reason, node, exit code.

    ``{"state": "UNKNOWN", ...}`` when neither scontrol nor sacct knows the job any more.
    """
    fields = show("job", job_id)
    if fields is not None:
        return {"state": fields.get("JobState", "UNKNOWN"), "reason": fields.get("Reason", "None"),
                "node": fields.get("NodeList") or None, "exit_code": fields.get("ExitCode")}
    done = command(["sacct", "--noheader", "--parsable2", "--format=JobID,State,Reason,NodeList,ExitCode",
                    f"--jobs={job_id}"])
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        found_id, state, reason, node, code = (line.split("|") + [""] * 5)[:5]
        if found_id == job_id:
            return {"state": state.split()[0], "reason": reason or "None", "node": node or None, "exit_code": code}
    return {"state": "UNKNOWN", "reason": "neither scontrol nor sacct knows the job any more", "node": None,
            "exit_code": None}


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        command(["scancel", *job_ids])
