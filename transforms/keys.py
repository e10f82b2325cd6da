"""Deterministic, vectorized bucketing of string keys.

Python's `hash()` is salted per process, so it cannot route rows to buckets
consistently across workers; this hash is computed from the UTF-8 bytes with
numpy and is identical on every machine and run.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_P = np.uint64(1099511628211)


def hash_strings(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hash of each string from its length and last 16 bytes (nulls → 0).

    Keys here (payloads, hotspot keys, device ids) vary most at the end;
    16 gathers of n bytes are much cheaper than hashing every byte.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    col = pc.fill_null(col.cast(pa.large_string()), "")
    n = len(col)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offs = np.frombuffer(col.buffers()[1], dtype=np.int64)[col.offset:col.offset + n + 1]
    buf = col.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None and buf.size else np.zeros(1, np.uint8)
    starts, ends = offs[:-1], offs[1:]
    h = (ends - starts).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for k in range(1, 17):
        pos = ends - k
        ok = pos >= starts
        byte = data[np.where(ok, pos, 0)].astype(np.uint64)
        h = (h ^ np.where(ok, byte, np.uint64(0))) * _P
    h ^= h >> np.uint64(31)
    h *= np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    return h


def buckets(col: pa.Array | pa.ChunkedArray, n_buckets: int) -> np.ndarray:
    return (hash_strings(col) % np.uint64(max(1, n_buckets))).astype(np.int64)
