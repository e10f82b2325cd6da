"""sha256 of many records at once, as one Arrow string column.

Every row carries `record_sha256`, so this runs once per input record. The
digests come from hashlib (C) and are hex-encoded in one `hexlify` of their
concatenation, straight into an Arrow buffer: no Python string per row.
Measured on 200k witness lines: 71 ms, against 238 ms for `hexdigest()` per
line followed by `pa.array`.
"""
from __future__ import annotations

import binascii
import hashlib
from operator import methodcaller
from typing import Sequence

import numpy as np
import pyarrow as pa

_DIGEST = methodcaller("digest")


def sha256_hex(records: Sequence[bytes]) -> pa.StringArray:
    """Lower-case hex sha256 of each record, in order (64 characters each)."""
    n = len(records)
    hexed = binascii.hexlify(b"".join(map(_DIGEST, map(hashlib.sha256, records))))
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexed))
