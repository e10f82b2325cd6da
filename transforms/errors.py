"""Errors shown to users as one line (no traceback).

Beam-free, so the CLI can catch them without importing Beam before it has
started a local cluster."""
from __future__ import annotations

import re


class InputError(Exception):
    """A user-facing problem with an input path: printed as one line, no traceback."""


def first_line(e: BaseException) -> str:
    """An exception's first non-blank line, or its type name when it has no text."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b.*:")
_WRAPPER = re.compile(r"^RuntimeError: (?=[\w.]*(Error|Exception)\b.*:)")


def one_line(e: BaseException, plain: tuple[type, ...] = (InputError,)) -> str:
    """The root cause of an exception as one line.

    Beam's local runner re-raises an error of a worker as a RuntimeError whose
    text is the worker's whole traceback ("Traceback (most recent call last):"
    first, "RuntimeError: OSError: [Errno 28] No space left on device: … [while
    running 'ReadAndShard']" last): its first line says nothing, its last
    error line says what happened and in which step. Exceptions of a `plain`
    type are messages already and get no type name in front."""
    while e.__cause__ is not None and e.__cause__ is not e:
        e = e.__cause__
    text = str(e) or type(e).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    hits = [line for line in lines if _ERROR_LINE.match(line)]
    line = _WRAPPER.sub("", hits[-1]) if hits else (lines[0] if lines else type(e).__name__)
    if not hits and not line.startswith(type(e).__name__) and not isinstance(e, plain):
        line = f"{type(e).__name__}: {line}"
    return re.sub(r"\s+", " ", line)[:400]
