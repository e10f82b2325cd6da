"""H3 functions for DuckDB as vectorized (Arrow) Python UDFs.

DuckDB hands each UDF a whole vector (≈2048 rows) as Arrow, so the Python
cost is per vector, not per row: resolution and parent are pure bit
arithmetic on the uint64 index, and the functions h3-py only offers as
scalars run once per *unique* value of the vector (cells repeat a lot:
hotspots, stations). Invalid input gives NULL rather than an error so one bad
cell never kills an analyst's query. UDFs live in the Python process only:
they are not stored in a `--db` file (see docs/queries.md).
"""
from __future__ import annotations

import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms import h3util

LATLNG = pa.struct([("lat", pa.float64()), ("lng", pa.float64())])


def _arr(x) -> pa.Array:
    return x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x


def _u64(x) -> tuple[np.ndarray, np.ndarray]:
    """(cells with nulls as 0, null mask)."""
    a = _arr(x).cast(pa.uint64(), safe=False)
    return pc.fill_null(a, 0).to_numpy(zero_copy_only=False).astype(np.uint64), _nulls(a)


def _nulls(a: pa.Array) -> np.ndarray:
    return pc.is_null(a).to_numpy(zero_copy_only=False)


def _unique_map(keys: np.ndarray, fn, out_dtype) -> np.ndarray:
    uniq, inv = np.unique(keys, return_inverse=True)
    vals = np.array([fn(k) for k in uniq.tolist()], dtype=out_dtype)
    return vals[inv.reshape(-1)] if len(keys) else np.empty(0, out_dtype)


def _valid_cells(cells: np.ndarray) -> np.ndarray:
    return _unique_map(cells, lambda c: bool(c) and h3i.is_valid_cell(c), bool)


def _well_formed(c: np.ndarray) -> np.ndarray:
    """H3 cell bit layout checked with array ops (all but the pentagon-deleted
    digit rule), so bit-arithmetic functions stay per-vector, not per-value."""
    u = np.uint64
    ok = ((c >> u(59)) == u(1))  # top bit 0, mode 1 (cell)
    ok &= ((c >> u(56)) & u(7)) == u(0)
    ok &= ((c >> u(45)) & u(0x7F)) < u(122)
    res = (c >> u(52)) & u(0xF)
    for i in range(1, 16):
        d = (c >> u((15 - i) * 3)) & u(7)
        ok &= np.where(u(i) <= res, d != u(7), d == u(7))
    return ok


def cell_resolution(cell) -> pa.Array:
    c, null = _u64(cell)
    bad = null | ~_well_formed(c)
    return pa.array(h3util.resolution(c).astype(np.int32), pa.int32(), mask=bad)


def cell_to_parent(cell, res) -> pa.Array:
    c, null = _u64(cell)
    r = _arr(res).cast(pa.int64())
    rn = pc.fill_null(r, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    own = h3util.resolution(c)
    bad = null | _nulls(r) | (rn < 0) | (rn > own) | ~_well_formed(c)
    rr = np.clip(rn, 0, 15).astype(np.uint64)
    digits = (np.left_shift(np.uint64(1), (np.uint64(15) - rr) * np.uint64(3))) - np.uint64(1)
    mask = np.uint64(0xF) << np.uint64(52)
    out = (c & ~mask) | (rr << np.uint64(52)) | digits
    return pa.array(out, pa.uint64(), mask=bad)


def cell_to_latlng(cell) -> pa.Array:
    c, null = _u64(cell)
    bad = null | ~_valid_cells(c)
    lat, lng = h3util.centers(np.where(bad, 0, c))
    return pa.StructArray.from_arrays(
        [pa.array(lat, pa.float64()), pa.array(lng, pa.float64())],
        fields=list(LATLNG), mask=pa.array(bad))


def cell_to_lat(cell) -> pa.Array:
    return cell_to_latlng(cell).field("lat")


def cell_to_lng(cell) -> pa.Array:
    return cell_to_latlng(cell).field("lng")


def latlng_to_cell(lat, lng, res) -> pa.Array:
    y = pc.fill_null(_arr(lat).cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    x = pc.fill_null(_arr(lng).cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    r = pc.fill_null(_arr(res).cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
    n = len(y)
    out = np.zeros(n, np.uint64)
    ok = ~np.isnan(y) & ~np.isnan(x) & (np.abs(y) <= 90) & (np.abs(x) <= 180) & (r >= 0) & (r <= 15)
    if ok.any():
        keys = np.rec.fromarrays([y[ok], x[ok], r[ok]])
        uniq, inv = np.unique(keys, return_inverse=True)
        vals = np.array([h3i.latlng_to_cell(a, b, int(k)) for a, b, k in uniq.tolist()], np.uint64)
        out[ok] = vals[inv.reshape(-1)]
    return pa.array(out, pa.uint64(), mask=~ok)


def grid_distance(a, b) -> pa.Array:
    x, nx = _u64(a)
    y, ny = _u64(b)
    bad = nx | ny
    pairs = np.rec.fromarrays([np.where(bad, 0, x), np.where(bad, 0, y)])
    uniq, inv = np.unique(pairs, return_inverse=True)
    d = h3util.grid_distance(uniq["f0"], uniq["f1"]) if len(uniq) else np.empty(0, np.int64)
    out = d[inv.reshape(-1)] if len(x) else np.empty(0, np.int64)
    return pa.array(out, pa.int64(), mask=bad | (out < 0))


def cell_to_string(cell) -> pa.Array:
    c, null = _u64(cell)
    bad = null | ~_valid_cells(c)
    s = _unique_map(np.where(bad, 0, c), lambda v: format(v, "x"), object)
    return pa.array(s, pa.string(), mask=bad)


def string_to_cell(text) -> pa.Array:
    s = _arr(text).cast(pa.string())
    vals = s.to_pylist()
    uniq = {v: None for v in vals if v is not None}
    for v in uniq:
        try:
            c = int(v.strip(), 16)
            uniq[v] = c if h3i.is_valid_cell(c) else None
        except ValueError:
            uniq[v] = None
    return pa.array([None if v is None else uniq[v] for v in vals], pa.uint64())


def is_valid_cell(cell) -> pa.Array:
    c, null = _u64(cell)
    return pa.array(~null & _valid_cells(c), pa.bool_())


# name → (function, parameter types, return type)
UDFS = {
    "h3_cell_to_parent": (cell_to_parent, ["UBIGINT", "INTEGER"], "UBIGINT"),
    "h3_cell_to_latlng": (cell_to_latlng, ["UBIGINT"], "STRUCT(lat DOUBLE, lng DOUBLE)"),
    "h3_cell_to_lat": (cell_to_lat, ["UBIGINT"], "DOUBLE"),
    "h3_cell_to_lng": (cell_to_lng, ["UBIGINT"], "DOUBLE"),
    "h3_latlng_to_cell": (latlng_to_cell, ["DOUBLE", "DOUBLE", "INTEGER"], "UBIGINT"),
    "h3_grid_distance": (grid_distance, ["UBIGINT", "UBIGINT"], "BIGINT"),
    "h3_cell_to_string": (cell_to_string, ["UBIGINT"], "VARCHAR"),
    "h3_string_to_cell": (string_to_cell, ["VARCHAR"], "UBIGINT"),
    "h3_cell_resolution": (cell_resolution, ["UBIGINT"], "INTEGER"),
    "h3_is_valid_cell": (is_valid_cell, ["UBIGINT"], "BOOLEAN"),
}


def register(con) -> None:
    import duckdb
    try:
        from duckdb.func import SPECIAL
    except ImportError:  # duckdb < 1.4 named the module `functional`
        from duckdb.functional import SPECIAL

    for name, (fn, params, ret) in UDFS.items():
        try:
            con.remove_function(name)
        except (duckdb.InvalidInputException, duckdb.CatalogException):
            pass
        con.create_function(name, fn, [duckdb.sqltype(p) for p in params], duckdb.sqltype(ret),
                            type="arrow", null_handling=SPECIAL)
