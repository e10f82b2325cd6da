"""Gateway registry, deny list and entropy tables, normalised once per run.

The registry is loaded by the driver (so a bad file fails before any worker
starts) and written as one normalised Parquet file into the run's staging
area; workers load that file in `DoFn.setup`, which works on every runner and
avoids pickling it into each task.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.witness import DENYLIST, ENTROPY, GATEWAY_REGISTRY
from transforms import h3util
from transforms.fileio import InputError
from transforms.keys import KeyIndex
from transforms.tables import read_table, require_columns

REGISTRY_NORMAL = pa.schema(list(GATEWAY_REGISTRY) + [
    pa.field("lat", pa.float64()), pa.field("lng", pa.float64())])


def _cast(t: pa.Table, name: str, typ: pa.DataType, uri: str) -> pa.Array:
    col = t.column(name) if name in t.column_names else pa.nulls(t.num_rows, typ)
    try:
        return col.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InputError(f"gateway registry: {uri}: column {name} is not {typ}: {e}") from None


def load_registry(uri: str) -> tuple[pa.Table, list[dict]]:
    """Return (normalised registry, problems). Problems are rows kept but
    demoted (bad H3 → not asserted; duplicate keys → first kept); the run
    manifest lists them so nothing is silently altered."""
    t = read_table(uri, "gateway registry")
    require_columns(t, ["pub_key", "location"], uri, "gateway registry")
    problems: list[dict] = []
    keys = t.column("pub_key").cast(pa.string())
    cells, valid = h3util.parse_cells(t.column("location"))
    for i in np.nonzero(~valid)[0][:1000]:
        problems.append({"row": int(i) + 1, "pub_key": keys[int(i)].as_py(),
                         "problem": f"location {t.column('location')[int(i)].as_py()!r} is not an H3 cell; treated as not asserted"})
    cells = np.where(valid, cells, np.uint64(0))
    cells = _cells_from_latlng(t, cells, keys, problems)
    loc = pa.array(cells, pa.uint64()).to_numpy()
    loc_arr = pa.array(loc, pa.uint64(), mask=(loc == 0))
    lat, lng = h3util.centers(cells, checked=True)  # invalid cells were zeroed, latlng_to_cell ones are valid
    full = _cast(t, "is_full_hotspot", pa.bool_(), uri)
    if "is_full_hotspot" not in t.column_names:
        full = pa.array(np.ones(t.num_rows, dtype=bool))
    out = pa.table({
        "pub_key": keys,
        "location": loc_arr,
        "gain": _cast(t, "gain", pa.int32(), uri),
        "elevation": _cast(t, "elevation", pa.int32(), uri),
        "region": _cast(t, "region", pa.string(), uri),
        "is_full_hotspot": full,
        "lat": pa.array(lat), "lng": pa.array(lng),
    }, schema=REGISTRY_NORMAL)
    null_keys = pc.is_null(out.column("pub_key")).to_numpy(zero_copy_only=False)
    if null_keys.any():
        problems.append({"row": int(np.nonzero(null_keys)[0][0]) + 1, "pub_key": None,
                         "problem": f"{int(null_keys.sum())} row(s) without pub_key dropped"})
        out = out.filter(pa.array(~null_keys))
    # Hash-based: sorting ~1M base58 keys as Python strings cost ~0.6 µs each
    # on the driver, for registries that almost never hold a duplicate.
    if pc.count_distinct(out.column("pub_key")).as_py() < out.num_rows:
        first = (pa.table({"k": out.column("pub_key"), "i": pa.array(np.arange(out.num_rows))})
                 .group_by("k", use_threads=False).aggregate([("i", "min")]).column("i_min").to_numpy())
        problems.append({"row": None, "pub_key": None,
                         "problem": f"{out.num_rows - len(first)} duplicate pub_key row(s); first kept"})
        out = out.take(pa.array(np.sort(first)))
    return out, problems


def _cells_from_latlng(t: pa.Table, cells: np.ndarray, keys, problems: list[dict]) -> np.ndarray:
    """Registries exported as coordinates: a row without an H3 location but
    with lat/lng (or lon) is asserted at its res-12 cell; coordinates off the
    globe (lat 91, lon -181, NaN) leave it not asserted, reported by row."""
    lng_col = "lng" if "lng" in t.column_names else "lon" if "lon" in t.column_names else None
    if "lat" not in t.column_names or lng_col is None:
        return cells
    import h3.api.basic_int as h3i
    try:
        lat = t.column("lat").cast(pa.float64()).to_numpy(zero_copy_only=False)
        lng = t.column(lng_col).cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        problems.append({"row": None, "pub_key": None, "problem": f"lat/{lng_col} columns are not numbers; ignored"})
        return cells
    cells = cells.copy()
    for i in np.nonzero(cells == 0)[0]:
        y, x = lat[i], lng[i]
        if np.isnan(y) and np.isnan(x):
            continue
        if not (np.isfinite(y) and np.isfinite(x) and -90 <= y <= 90 and -180 <= x <= 180):
            if len(problems) < 1000:
                problems.append({"row": int(i) + 1, "pub_key": keys[int(i)].as_py(),
                                 "problem": f"lat {y}, {lng_col} {x} is not on the globe "
                                            f"(lat -90..90, {lng_col} -180..180); treated as not asserted"})
            continue
        cells[i] = np.uint64(h3i.latlng_to_cell(float(y), float(x), 12))
    return cells


def load_denylist(uri: str | None) -> pa.Table:
    if not uri:
        return DENYLIST.empty_table()
    t = read_table(uri, "deny list")
    require_columns(t, ["pub_key"], uri, "deny list")
    wk = t.column("witness_key").cast(pa.string()) if "witness_key" in t.column_names else pa.nulls(t.num_rows, pa.string())
    return pa.table({"pub_key": t.column("pub_key").cast(pa.string()), "witness_key": wk}, schema=DENYLIST)


def load_entropy(uri: str | None) -> pa.Table | None:
    if not uri:
        return None
    t = read_table(uri, "entropy")
    require_columns(t, ["data", "timestamp"], uri, "entropy")
    return pa.table({"data": t.column("data").cast(pa.string()),
                     "timestamp": t.column("timestamp").cast(pa.int64())}, schema=ENTROPY)


def lookup(keys: pa.Array | pa.ChunkedArray, registry: pa.Table, index: KeyIndex | None = None) -> np.ndarray:
    """Registry row index per key, -1 when absent (vectorized); pass the
    worker's `KeyIndex` of the registry to skip rebuilding it."""
    return (index or KeyIndex(registry.column("pub_key"))).find(keys)


def gather(registry: pa.Table, idx: np.ndarray, col: str, fill) -> np.ndarray:
    """Registry column values at idx (−1 → fill)."""
    arr = registry.column(col)
    if len(arr) == 0:
        return np.full(len(idx), fill)
    vals = pc.fill_null(arr, fill).to_numpy(zero_copy_only=False)
    out = vals[np.clip(idx, 0, None)]
    return np.where(idx >= 0, out, fill)
