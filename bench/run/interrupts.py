"""Ctrl-C and SIGTERM stop a sweep once: the first one stops it, any that follow are ignored.

A quick burst of signals (a scheduler's TERM after an impatient Ctrl-C, a key held
down) used to raise a second KeyboardInterrupt inside the code that kills the
worker and writes its ``interrupted`` record, losing the record. With
:func:`stop_once` the first signal raises KeyboardInterrupt and ignores every later
SIGINT and SIGTERM for the rest of the process, which by then only records the
run, prints how to resume, and exits 130. SIGKILL still ends it at once.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop(signum, frame) -> None:
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_once() -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise KeyboardInterrupt once, then are ignored.

    On a normal exit the previous handlers come back; after an interrupt they do not,
    since a restored handler would turn a late signal of the burst into a traceback.
    A SIGINT the shell told us to ignore (a background job) stays ignored.
    """
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    for number, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(number, _stop)
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not interrupted:
            for number, handler in previous.items():
                signal.signal(number, handler)
