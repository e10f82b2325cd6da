"""Errors shown to users as one line (no traceback).

Beam-free, so the CLI can catch them without importing Beam before it has
started a local cluster."""
from __future__ import annotations


class InputError(Exception):
    """A user-facing problem with an input path: printed as one line, no traceback."""


def first_line(e: BaseException) -> str:
    """An exception's first non-blank line, or its type name when it has no text."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
