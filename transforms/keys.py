"""Deterministic, vectorized hashing of string keys: bucketing and exact lookups.

Python's `hash()` is salted per process, so it cannot route rows to buckets
consistently across workers; this hash is computed from the UTF-8 bytes with
numpy and is identical on every machine and run.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

_P = np.uint64(1099511628211)


def hash_strings(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hash of each string from its length and last 16 bytes (nulls → 0).

    Keys here (payloads, hotspot keys, device ids) vary most at the end;
    16 bytes per key are much cheaper than hashing every byte. Each key's
    last 16 bytes are one row of a sliding-window view of the data buffer
    (one gather of 16 contiguous bytes per key), transposed so the fold,
    FNV style from the last byte back, runs over contiguous arrays: 2.5 ms
    per 80k hotspot keys against 7.7 ms for 16 separate byte gathers, same
    values (tests/test_key_index.py states the definition).
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    col = pc.fill_null(col.cast(pa.large_string()), "")
    n = len(col)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offs = np.frombuffer(col.buffers()[1], dtype=np.int64)[col.offset:col.offset + n + 1]
    buf = col.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None and buf.size else np.zeros(0, np.uint8)
    ends = offs[1:]
    lens = ends - offs[:-1]
    if ends[0] >= 16:  # every window lies in the buffer (ends only grow)
        win = sliding_window_view(data[:offs[-1]], 16)[ends - 16]
    else:  # a key ends in the first 16 bytes: 16 zero bytes in front
        win = sliding_window_view(np.concatenate([np.zeros(16, np.uint8), data[:offs[-1]]]), 16)[ends]
    short = np.flatnonzero(lens < 16)
    if len(short):  # bytes before a key's own start count as 0
        win[short] *= np.arange(16)[None, :] >= (16 - lens[short])[:, None]
    tail = np.ascontiguousarray(win.T)  # tail[j]: byte end − 16 + j of every key
    h = lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for j in range(15, -1, -1):
        h ^= tail[j]
        h *= _P
    h ^= h >> np.uint64(31)
    h *= np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    return h


def buckets(col: pa.Array | pa.ChunkedArray, n_buckets: int) -> np.ndarray:
    return (hash_strings(col) % np.uint64(max(1, n_buckets))).astype(np.int64)


class KeyIndex:
    """Exact key → row lookups against a fixed key column, built once.

    `pc.index_in` rebuilds its hash table of the whole key column on every
    call (a 100k-key gateway registry: ~50 ms), and a run makes one call per
    bucket and side; this index is built once (per worker, for the
    registries) and each lookup costs a vectorized hash, a few rounds of
    open-addressing probes and an exact string comparison (~11 ms for 80k
    keys; a binary search over the sorted hashes took 8 ms of a 16.5 ms
    lookup, 17 dependent steps into a 0.8 MB array). Key columns whose keys
    share a 64-bit hash fall back to `index_in`. Same answers as
    `index_in`: first occurrence, −1 for absent or null keys."""

    def __init__(self, keys: pa.Array | pa.ChunkedArray):
        self.keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
        h = hash_strings(self.keys)
        n = len(h)
        # At least twice as many slots as keys, so probe chains stay short
        # and every chain ends at an empty slot.
        m = 1 << max(4, (2 * n - 1).bit_length())
        self.mask = m - 1
        self.slot_hash = np.zeros(m, dtype=np.uint64)
        self.slot_row = np.full(m, -1, dtype=np.int64)
        self.ambiguous = False
        todo, slot = np.arange(n), (h & np.uint64(self.mask)).astype(np.int64)
        while len(todo):  # linear probing, one round for every key still unplaced
            s = slot[todo]
            free = self.slot_row[s] < 0
            self.slot_row[s[free]] = todo[free]  # of keys racing for a slot, one wins
            placed = self.slot_row[s] == todo
            self.slot_hash[s[placed]] = h[todo[placed]]
            todo, s = todo[~placed], s[~placed]
            # Keys of equal hash share a probe sequence, so one of them stops
            # at the other's slot: seen here, for any pair.
            if (self.slot_hash[s] == h[todo]).any():
                self.ambiguous = True
                return
            slot[todo] = (s + 1) & self.mask

    def find(self, probe: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Row of each probe key (first occurrence), −1 when absent or null."""
        n = len(probe)
        if len(self.keys) == 0 or n == 0:
            return np.full(n, -1, dtype=np.int64)
        if self.ambiguous:
            idx = pc.index_in(probe, value_set=self.keys)
            return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        h = hash_strings(probe)
        row = np.full(n, -1, dtype=np.int64)
        todo, slot = np.arange(n), (h & np.uint64(self.mask)).astype(np.int64)
        while len(todo):  # a probe ends at its hash (found) or at an empty slot (absent)
            s = slot[todo]
            r = self.slot_row[s]
            hit = (r >= 0) & (self.slot_hash[s] == h[todo])
            row[todo[hit]] = r[hit]
            todo = todo[(r >= 0) & ~hit]
            slot[todo] = (slot[todo] + 1) & self.mask
        found = row >= 0
        same = pc.fill_null(pc.equal(probe, self.keys.take(pa.array(np.where(found, row, 0)))), False
                            ).to_numpy(zero_copy_only=False)
        return np.where(found & same, row, -1).astype(np.int64)
