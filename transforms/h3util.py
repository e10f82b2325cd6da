"""Vectorized H3 helpers.

h3-py exposes scalar functions only, so anything per row is either pure bit
arithmetic on the uint64 index (parents, resolution) or a scalar call over the
*unique* cells of a batch (registries have far fewer cells than reports).
"""
from __future__ import annotations

import h3
import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EARTH_RADIUS_M = 6371007.180918475  # H3's authalic radius, as Helium uses it
_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF) << _RES_SHIFT


def resolution(cells: np.ndarray) -> np.ndarray:
    return ((cells.astype(np.uint64) & _RES_MASK) >> _RES_SHIFT).astype(np.int64)


def parent(cells: np.ndarray, res: int) -> np.ndarray:
    """Parent at `res` by rewriting the resolution field and unused digits (all 7s)."""
    c = cells.astype(np.uint64)
    digits = np.uint64((1 << ((15 - res) * 3)) - 1)
    return (c & ~_RES_MASK) | (np.uint64(res) << _RES_SHIFT) | digits


def centers(cells: np.ndarray, checked: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lng) degrees of each cell centre; 0 cells give NaN, and so do
    invalid ones unless `checked` says every nonzero cell is a valid H3 cell
    already (parse_cells' output: checking again cost a second scalar H3
    call per registry hotspot)."""
    cells = np.asarray(cells, dtype=np.uint64)
    uniq, inv = np.unique(cells, return_inverse=True)
    lat = np.full(len(uniq), np.nan)
    lng = np.full(len(uniq), np.nan)
    todo = uniq.tolist()
    if not checked:
        todo = [c if c and h3i.is_valid_cell(c) else 0 for c in todo]
    for i, c in enumerate(todo):
        if c:
            lat[i], lng[i] = h3i.cell_to_latlng(c)
    return lat[inv], lng[inv]


def haversine_m(lat1, lng1, lat2, lng2, radius_m: float = EARTH_RADIUS_M) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dl = np.radians(np.asarray(lng2) - np.asarray(lng1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * radius_m * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def grid_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Grid distance per pair; -1 where H3 cannot compute it (pentagons, far apart)."""
    out = np.empty(len(a), dtype=np.int64)
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        try:
            out[i] = h3i.grid_distance(x, y)
        except Exception:  # h3 raises its own error types for undefined distances
            out[i] = -1
    return out


def grid_steps_cut_m(res: int, steps: int) -> float:
    """A great-circle distance (m) beyond which two points' cells at `res`
    are certainly ≥ `steps` grid steps apart, so `grid_distance` (a scalar
    H3 call per pair) is only needed for pairs closer than this.

    Neighbouring centres are √3 edges apart and edges within a resolution
    stay under twice the average, so cells fewer than `steps` steps apart
    have centres < 3.5·(steps − 1) average edges apart; each point lies
    within 2 average edges of its cell's centre. 4·(steps + 1) average edges
    bounds both with room to spare (res 11, 8 steps: 1,032 m; checked
    against real cells in tests/test_h3_cut.py)."""
    return 4.0 * (steps + 1) * h3.average_hexagon_edge_length(res, unit="m")


def parse_cells(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """H3 cells given as hex text or integers → (uint64 array, valid mask).

    Nulls and empty strings are "not asserted" (valid=True, cell 0); anything
    that is not a valid H3 cell is reported invalid so the caller can name it.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n = len(values)
    cells = np.zeros(n, dtype=np.uint64)
    valid = np.ones(n, dtype=bool)
    if pa.types.is_integer(values.type):
        raw = values.cast(pa.uint64(), safe=False).fill_null(0).to_numpy(zero_copy_only=False)
        cells[:] = raw
    else:
        text = pc.utf8_trim_whitespace(values.cast(pa.string()))
        done = _parse_plain_hex(text, cells)
        for i in np.flatnonzero(~done).tolist():  # decimal, prefixed, malformed: one at a time
            s = text[i].as_py()
            if s is None or s == "":
                continue
            try:
                cells[i] = int(s, 16) if not s.isdigit() or len(s) == 15 else int(s)
            except (ValueError, OverflowError):  # not a number, or wider than 64 bits
                valid[i] = False
    uniq = np.unique(cells[cells != 0])
    bad = {int(c) for c in uniq.tolist() if not h3i.is_valid_cell(int(c))}
    if bad:
        valid &= ~np.isin(cells, np.array(sorted(bad), dtype=np.uint64))
    return cells, valid


_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_NIBBLE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def _parse_plain_hex(text: pa.StringArray, cells: np.ndarray) -> np.ndarray:
    """Write the value of every 15- or 16-digit hex string (the form
    registries and H3 tools print) into `cells`; return which rows were
    done. Everything else — decimal integers, prefixes, malformed text,
    nulls — is left to the caller's one-at-a-time parse.

    A registry of Helium's size holds ~1M hotspots: parsing each with
    int(s, 16) cost ~0.5 µs per row on the driver before any input was read."""
    n = len(text)
    lengths = pc.coalesce(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False)
    pick = np.flatnonzero((lengths == 15) | (lengths == 16))
    done = np.zeros(n, dtype=bool)
    if not len(pick):
        return done
    # Right-aligned in 16 bytes, left-padded with '0'.
    sub = pc.utf8_lpad(text.take(pa.array(pick)), 16, "0")
    offsets = np.frombuffer(sub.buffers()[1], np.int32)[sub.offset:sub.offset + len(sub) + 1]
    if offsets[-1] - offsets[0] != 16 * len(sub):  # non-ASCII text: bytes are not characters
        return done
    digits = _NIBBLE[np.frombuffer(sub.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 16)]
    ok = (digits != 255).all(axis=1)
    # The one-at-a-time rule reads 16 decimal digits as a decimal number
    # (15 are hex: a cell printed in hex); leave those to it.
    ok &= ~((lengths[pick] == 16) & (digits < 10).all(axis=1))
    vals = np.zeros(len(sub), dtype=np.uint64)
    for k in range(16):
        vals = (vals << np.uint64(4)) | digits[:, k].astype(np.uint64)
    cells[pick[ok]] = vals[ok]
    done[pick[ok]] = True
    return done


def latlng_to_cells(lat: np.ndarray, lng: np.ndarray, res: int) -> pa.Array:
    """Cell per point; null where the coordinates are missing or out of range."""
    out = []
    for y, x in zip(np.asarray(lat, float).tolist(), np.asarray(lng, float).tolist()):
        if y != y or x != x or not (-90 <= y <= 90 and -180 <= x <= 180):
            out.append(None)
        else:
            out.append(h3i.latlng_to_cell(y, x, res))
    return pa.array(out, pa.uint64())


def to_numpy_u64(col) -> np.ndarray:
    return pc.fill_null(col, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
