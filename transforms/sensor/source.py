"""How weather-station packets and the station registry are recognised.

Packet time arrives as epoch numbers (seconds or milliseconds, sometimes
finer) or as ISO 8601 text. Both are folded into one int64 ms column here,
vectorized, so every later step compares plain integers. The registry is
loaded once by the driver and rejected with a one-line `InputError` naming
the file when it cannot define a station's claimed location.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.sensor import MODELS, READING_INPUT, STATION_REGISTRY
from transforms import h3util
from transforms.fileio import InputError
from transforms.order import lexsort
from transforms.keys import KeyIndex
from transforms.sources import SourceSpec
from transforms.tables import read_table, require_columns

CLAIM_RES = 7
_NUMERIC = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_ISO = (r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?"
        r"(Z|[+-]\d{2}(:?\d{2})?)?$")
_ZONE = r"[T ]\d{2}[^+Z]*(Z|[+-]\d{2}(:?\d{2})?)$"
_DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"


def epoch_to_ms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers of unknown unit → (ms, ok). The unit is read from the magnitude:
    below 1e11 seconds (1e11 s is year 5138, 1e11 ms is 1973), then ms, µs, ns."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    a = np.abs(np.where(ok, v, 0.0))
    scale = np.select([a < 1e11, a < 1e14, a < 1e17], [1e3, 1.0, 1e-3], 1e-6)
    ms = np.where(ok, np.floor(v * scale + 0.5), 0.0)
    ok &= np.abs(ms) < 9e15  # beyond ±285 000 years is garbage, and keeps int64 safe
    return np.where(ok, ms, 0).astype(np.int64), ok


def text_to_ms(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 text (UTC when it has no offset) or numeric text → (ms, ok); null → not ok."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    s = pc.utf8_upper(pc.utf8_trim_whitespace(text.cast(pa.string())))
    n = len(s)
    ms = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    num = _np_bool(pc.match_substring_regex(s, _NUMERIC))
    if num.any():
        vals = pc.cast(pc.filter(s, pa.array(num)), pa.float64()).to_numpy(zero_copy_only=False)
        ms[num], ok[num] = epoch_to_ms(vals)
    iso = _np_bool(pc.match_substring_regex(s, _ISO))
    if iso.any():
        sub = pc.filter(s, pa.array(iso))
        date_only = pc.match_substring_regex(sub, _DATE_ONLY)
        sub = pc.if_else(date_only, pc.binary_join_element_wise(sub, "T00:00:00", ""), sub)
        zoned = pc.match_substring_regex(sub, _ZONE)
        sub = pc.if_else(zoned, sub, pc.binary_join_element_wise(sub, "Z", ""))
        got, good = _cast_iso(sub)
        ms[iso], ok[iso] = got, good
    return ms, ok


def _cast_iso(sub: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Cast zoned ISO text to ms; a bad calendar value (month 13) only costs its own row."""
    typ = pa.timestamp("ns", tz="UTC")  # ns: accepts any number of fractional digits
    try:
        ns = sub.cast(typ)
        return _ns_to_ms(ns), np.ones(len(sub), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = sub.to_pylist()
    uniq = {}
    for v in set(values):
        try:
            uniq[v] = int(_ns_to_ms(pa.array([v]).cast(typ))[0])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            uniq[v] = None
    got = np.array([uniq[v] if uniq[v] is not None else 0 for v in values], dtype=np.int64)
    good = np.array([uniq[v] is not None for v in values], dtype=bool)
    return got, good


def _ns_to_ms(ns: pa.Array) -> np.ndarray:
    return np.floor_divide(ns.cast(pa.int64()).to_numpy(zero_copy_only=False), 1_000_000)


def _np_bool(a) -> np.ndarray:
    return pc.fill_null(a, False).to_numpy(zero_copy_only=False).astype(bool)


def _canonical_model(col) -> pa.Array:
    m = pc.utf8_upper(pc.utf8_trim_whitespace(col.cast(pa.string())))
    return pc.if_else(pc.equal(m, ""), pa.scalar(None, pa.string()), m)


def normalize(t: pa.Table) -> tuple[pa.Table, np.ndarray, list[str | None]]:
    """Fold `timestamp` (epoch number) / `utc_datetime` (text) into int64 ms; upper-case model.

    Returns (table, bad rows, message per row) as `transforms.parse` expects.
    """
    n = t.num_rows
    num = t.column("timestamp").cast(pa.float64())
    has_num = _np_bool(pc.is_valid(num))
    num_ms, num_ok = epoch_to_ms(pc.fill_null(num, 0.0).to_numpy(zero_copy_only=False))
    text = t.column("utc_datetime")
    has_text = _np_bool(pc.is_valid(text))
    text_ms, text_ok = text_to_ms(text)
    ts = np.where(has_num, num_ms, text_ms)
    bad = np.where(has_num, ~num_ok, ~(has_text & text_ok))
    msgs: list[str | None] = [None] * n
    if bad.any():
        raw_num = num.to_pylist() if hasattr(num, "to_pylist") else list(num)
        raw_text = text.to_pylist()
        for i in np.nonzero(bad)[0].tolist():
            if has_num[i]:
                msgs[i] = f"timestamp {raw_num[i]!r} is not a usable epoch time"
            elif has_text[i]:
                msgs[i] = f"utc_datetime {raw_text[i]!r} is not ISO 8601 text or an epoch number"
            else:
                msgs[i] = "missing time: neither timestamp nor utc_datetime is given"
    t = t.set_column(t.schema.get_field_index("timestamp"), "timestamp", pa.array(ts, pa.int64()))
    t = t.set_column(t.schema.get_field_index("model"), "model", _canonical_model(t.column("model")))
    return t, bad, msgs


READING = SourceSpec(
    "reading", READING_INPUT, nested_key=None,
    aliases={"lng": "lon", "longitude": "lon", "latitude": "lat"},
    parse_types={"timestamp": pa.float64()},
    normalize=normalize, event_time="timestamp")


# ------------------------------------------------------------------ registry
def _claim_times(col, uri: str) -> pa.Array:
    n = len(col)
    if pa.types.is_timestamp(col.type):
        return pc.cast(pc.cast(col, pa.timestamp("ms", tz="UTC")), pa.int64())
    valid = _np_bool(pc.is_valid(col))
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        ms, ok = epoch_to_ms(pc.fill_null(col.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False))
    else:
        ms, ok = text_to_ms(col.cast(pa.string()))
    bad = valid & ~ok
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(f"station registry: {uri}: row {i + 1}: claimed_at {col[i].as_py()!r} is not "
                         f"a time (ISO 8601 or epoch s/ms); {int(bad.sum())} such row(s)")
    return pa.array(ms, pa.int64(), mask=~valid if n else None)


def load_station_registry(uri: str) -> tuple[pa.Table, list[dict]]:
    """Return (registry in STATION_REGISTRY form, problems).

    Anything that would make a station's claimed location ambiguous is an
    InputError (the run stops before any worker starts); cells finer than
    res 7 are reduced to their res-7 parent and duplicates keep the latest
    claim — both reported as problems so the manifest shows them.
    """
    what = "station registry"
    t = read_table(uri, what)
    require_columns(t, ["station_id", "claimed_cell"], uri, what)
    if t.num_rows == 0:
        raise InputError(f"{what}: {uri} has no rows")
    problems: list[dict] = []
    ids = t.column("station_id").cast(pa.string()).combine_chunks()
    null_id = _np_bool(pc.is_null(ids)) | _np_bool(pc.equal(pc.utf8_trim_whitespace(ids), ""))
    if null_id.any():
        raise InputError(f"{what}: {uri}: row {int(np.nonzero(null_id)[0][0]) + 1}: empty station_id "
                         f"({int(null_id.sum())} such row(s))")
    raw_cells = t.column("claimed_cell")
    cells, valid = h3util.parse_cells(raw_cells)
    missing = valid & (cells == 0)
    for mask, why in ((~valid, "is not an H3 cell"), (missing, "is missing")):
        if mask.any():
            i = int(np.nonzero(mask)[0][0])
            raise InputError(f"{what}: {uri}: row {i + 1} (station {ids[i].as_py()!r}): claimed_cell "
                             f"{raw_cells[i].as_py()!r} {why}; {int(mask.sum())} such row(s)")
    res = h3util.resolution(cells)
    coarse = res < CLAIM_RES
    if coarse.any():
        i = int(np.nonzero(coarse)[0][0])
        raise InputError(f"{what}: {uri}: row {i + 1} (station {ids[i].as_py()!r}): claimed_cell "
                         f"{raw_cells[i].as_py()!r} is resolution {int(res[i])}; claims are res-{CLAIM_RES} cells")
    fine = res > CLAIM_RES
    if fine.any():
        problems.append({"row": int(np.nonzero(fine)[0][0]) + 1, "station_id": None,
                         "problem": f"{int(fine.sum())} claimed_cell(s) finer than res {CLAIM_RES}; "
                                    f"their res-{CLAIM_RES} parent is used"})
        cells = np.where(fine, h3util.parent(cells, CLAIM_RES), cells)
    if "model" in t.column_names:
        model = _canonical_model(t.column("model").combine_chunks())
        unknown = _np_bool(pc.and_(pc.is_valid(model), pc.invert(pc.is_in(model, pa.array(MODELS)))))
        if unknown.any():
            i = int(np.nonzero(unknown)[0][0])
            raise InputError(f"{what}: {uri}: row {i + 1} (station {ids[i].as_py()!r}): model "
                             f"{t.column('model')[i].as_py()!r} is not one of {', '.join(MODELS)}")
    else:
        model = pa.nulls(t.num_rows, pa.string())
    claimed_at = (_claim_times(t.column("claimed_at").combine_chunks(), uri)
                  if "claimed_at" in t.column_names else pa.nulls(t.num_rows, pa.int64()))
    out = pa.table({"station_id": ids, "model": model, "claimed_cell": pa.array(cells, pa.uint64()),
                    "claimed_at": claimed_at}, schema=STATION_REGISTRY)
    # Latest claim per station wins (null claimed_at sorts first, i.e. oldest).
    at = pc.fill_null(out.column("claimed_at"), np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
    codes = pc.dictionary_encode(ids).indices.to_numpy(zero_copy_only=False)
    order = lexsort((at, codes))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = codes[order][1:] != codes[order][:-1]
    if not last.all():
        problems.append({"row": None, "station_id": None,
                         "problem": f"{int((~last).sum())} duplicate station_id row(s); the latest claim is kept"})
        out = out.take(pa.array(np.sort(order[last])))
    return out, problems


def lookup(station_ids, registry: pa.Table) -> np.ndarray:
    """Registry row per station id, −1 when absent."""
    return KeyIndex(registry.column("station_id")).find(station_ids)
