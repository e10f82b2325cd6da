"""Errors shown to users as one line (no traceback).

Beam-free, so the CLI can catch them without importing Beam before it has
started a local cluster."""
from __future__ import annotations


class InputError(Exception):
    """A user-facing problem with an input path: printed as one line, no traceback."""
