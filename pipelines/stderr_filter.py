"""Keep Beam's raw tracebacks of a failed step off the terminal.

Beam's SDK worker prints the traceback of every failed bundle straight to
`sys.stderr` (`SdkWorker._execute`: `print(traceback_string, file=sys.stderr)`),
not through logging, so no log level stops it: one full disk printed ~130
lines before the CLI's own one-line error, in the driver (threads mode) and
in each worker process (`multi_processing`). The same error is raised in the
driver, where the CLI prints it as one line. HEXSIEVE_DEBUG=1 leaves stderr
alone.
"""
from __future__ import annotations

import contextlib
import os
import sys

_TRACEBACK = "Traceback (most recent call last):"


class DropTracebacks:
    """A stderr that drops writes that are whole tracebacks (and the newline
    `print` writes after them); everything else passes through unchanged."""

    def __init__(self, stream):
        self._stream = stream
        self._after_traceback = False

    def write(self, s: str) -> int:
        if s.startswith(_TRACEBACK):
            self._after_traceback = True
            return len(s)
        if self._after_traceback and s == "\n":
            self._after_traceback = False
            return len(s)
        self._after_traceback = False
        return self._stream.write(s)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding…
        return getattr(self._stream, name)


def install() -> None:
    """For a process of our own (a Beam worker): for good."""
    if not os.environ.get("HEXSIEVE_DEBUG") and not isinstance(sys.stderr, DropTracebacks):
        sys.stderr = DropTracebacks(sys.stderr)


@contextlib.contextmanager
def installed():
    """For one CLI command: the caller's stderr is back afterwards (tests call
    the CLI in-process with their own captured stderr)."""
    before = sys.stderr
    install()
    try:
        yield
    finally:
        sys.stderr = before
