"""Starting child processes: every helper process mnist-bench starts goes through here.

A child gets the environment of :func:`child_env` (this one, with the repository
importable) and, unless it is a rank of the same run, its own process group, so
that :func:`kill_group` ends it and everything it started. Every wait has a
timeout; a child still running when its parent is interrupted (Ctrl-C, or SIGTERM
turned into Ctrl-C) or times out is killed with its group before the exception
goes on, so no benchmark is left loading the machine.

Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]


class ChildTimeout(RuntimeError):
    """A child ran past its timeout and was killed with its process group."""

    def __init__(self, argv: Sequence[str], timeout_s: float, output: str = "") -> None:
        super().__init__(f"{' '.join(map(str, argv[:4]))} ... took longer than {timeout_s:g} s and was killed")
        self.timeout_s = timeout_s
        self.output = output


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment, with the repository importable and ``extra`` on top: how every child starts."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def python(*args: str) -> list[str]:
    """The command line running this interpreter with ``args``."""
    return [sys.executable, *args]


def start(argv: Sequence[str], *, env: dict[str, str] | None = None, own_group: bool = True,
          **popen: object) -> subprocess.Popen:
    """Start ``argv`` with stdin closed; ``own_group``: in a new session, so :func:`kill_group` reaches its children.

    A rank of a data-parallel run stays in its parent's group (``own_group=False``):
    killing the run's group then ends every rank with it.
    """
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(list(argv), env=child_env() if env is None else env, start_new_session=own_group,
                            **popen)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group (it leads one: :func:`start`) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait(proc: subprocess.Popen, timeout_s: float) -> int | None:
    """``proc``'s exit code, or None when it ran past ``timeout_s`` (then it is killed with its group).

    Interrupted while waiting (KeyboardInterrupt, or any other exception), it kills
    the group first and lets the exception go on.
    """
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            kill_group(proc)


def run(argv: Sequence[str], timeout_s: float, *, env: dict[str, str] | None = None,
        cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` to the end, capturing its output as text; :class:`ChildTimeout` after ``timeout_s``."""
    proc = start(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 encoding="utf-8", errors="replace")
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        stdout, stderr = proc.communicate()
        raise ChildTimeout(argv, timeout_s, (stdout or "") + (stderr or "")) from None
    finally:
        if proc.poll() is None:
            kill_group(proc)
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)
