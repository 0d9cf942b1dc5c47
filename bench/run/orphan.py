"""A worker ends as soon as the harness that started it is gone.

The harness is the only reader of a worker's progress and the only one that can
record its result; if it is killed (SIGKILL, an OOM kill), its worker used to train
on until it next wrote to its closed pipe, loading a machine nobody was measuring.
On Linux the kernel kills the worker when its parent dies (``PR_SET_PDEATHSIG``);
elsewhere a thread polls the parent's pid. Ranks of a data-parallel run call this too,
so each dies with the process that started it. The run then has no record, which
``--resume`` treats as a run still to do.

Plain Python: importing this module imports no framework.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_S = 1.0


def _kernel_watch() -> bool:
    """Ask the kernel to SIGKILL this process when its parent exits; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _poll(parent: int) -> None:
    while True:
        time.sleep(POLL_S)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int | None) -> None:
    """End this process when ``parent`` (the pid that started it; None: the current parent) is gone."""
    parent = os.getppid() if parent is None else parent
    if not _kernel_watch():
        threading.Thread(target=_poll, args=(parent,), daemon=True, name="orphan-watch").start()
    if os.getppid() != parent:  # it died before the watch was set
        os._exit(1)
