"""sha256 of many records at once, as one Arrow string column.

Every row carries `record_sha256`, so this runs once per input record: it was
the largest single cost of reading (2M witness records, 2 Beam threads:
4.4 s of the 16.4 s the GIL was held), because hashlib holds the GIL for
inputs under 2 KiB and pays ~1 µs of call overhead per record.

`sha256_hex_arrow` hashes a whole Arrow binary column in one call through
polars-hash (Rust, SHA-NI where the CPU has it) with the GIL released:
37 ms per 60k records on one thread against 52–100 ms for hashlib, and a
second Beam thread runs Python meanwhile. `sha256_hex` keeps hashlib for
callers that hold Python bytes (building an Arrow array from 60k bytes
objects costs as much as hashing them).
"""
from __future__ import annotations

import binascii
import hashlib
import os
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


def sha256_hex_arrow(values: pa.Array) -> pa.StringArray:
    """Lower-case hex sha256 of each value of a binary (or string) array, in
    order; the same digests as `sha256_hex` of the values as bytes."""
    # One polars thread: the runner's own threads or processes are the
    # parallelism. Polars' default pool (one thread per core) beside two Beam
    # threads cost CPU without saving wall time (2M witness records,
    # alternating runs: 20.8–21.9 s with it, 18.7–20.4 s with one thread).
    # Read once, when polars is first imported; a value set by the user wins.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    import polars as pl
    import polars_hash  # noqa: F401 (registers the `chash` namespace)

    if len(values) == 0:
        return pa.array([], pa.string())
    if values.null_count:
        raise ValueError("sha256_hex_arrow: null values have no digest")
    col = pl.Series("v", values)
    out = pl.DataFrame([col]).select(pl.col("v").chash.sha2_256()).to_series().to_arrow()
    if isinstance(out, pa.ChunkedArray):
        out = out.combine_chunks()
    return out.cast(pa.string())
