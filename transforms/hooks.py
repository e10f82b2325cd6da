"""Test-only fault points, off unless an environment variable names them.

Crash-safety tests must kill a real `hexsieve run` at a known moment (during
read, while staging, half-way through a commit) and must provoke a full disk
without a tiny filesystem. Both are driven from the environment so the code
under test is the production code path, not a mock:

  HEXSIEVE_TEST_PAUSE_AT=<point>      sleep at <point> (first time only)
  HEXSIEVE_TEST_PAUSE_SIGNAL=<file>   created when the pause begins
  HEXSIEVE_TEST_PAUSE_SECONDS=<s>     how long to sleep (default 60)
  HEXSIEVE_TEST_ENOSPC=<substring>    writes to paths containing it fail with ENOSPC

Points: read (a file half read), write (first staged output written),
journal (commit journal written, nothing swapped), commit (first partition
swapped), ledger (manifest published, ledger not yet updated).
"""
from __future__ import annotations

import errno
import os
import threading
import time

_done: set[str] = set()
_lock = threading.Lock()


def pause(point: str) -> None:
    if os.environ.get("HEXSIEVE_TEST_PAUSE_AT") != point:
        return
    with _lock:
        if point in _done:
            return
        _done.add(point)
    sig = os.environ.get("HEXSIEVE_TEST_PAUSE_SIGNAL")
    if sig:
        with open(sig, "w") as f:
            f.write(f"{point} {os.getpid()}\n")
    time.sleep(float(os.environ.get("HEXSIEVE_TEST_PAUSE_SECONDS", "60")))


def check_space(path: str) -> None:
    needle = os.environ.get("HEXSIEVE_TEST_ENOSPC")
    if needle and needle in path:
        raise OSError(errno.ENOSPC, "No space left on device (simulated)", path)
