"""Vectorized beacon and witness verification over one bucket of reports.

Beacons are verified in buckets keyed by the beaconer (the 6-hour schedule
rule needs all beacons of a gateway together); witnesses in buckets keyed by
payload, joined to the verified beacons of the same bucket. Both functions are
pure: Arrow tables in, Arrow tables out, so batch and streaming share them.
"""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.provenance import SOURCE_FIELDS
from schemas.witness import BEACON_OUT, RAW_BEACON, RAW_WITNESS, WITNESS_OUT
from transforms import h3util
from transforms.rules import Constants, evaluate, reasons_from_matrix, verdicts
from transforms.keys import KeyIndex
from transforms.order import lexsort
from transforms.witness.registry import gather, lookup
from transforms.witness.rules import BEACON_RULES, WITNESS_RULES

_SRC = [f.name for f in SOURCE_FIELDS]
_B64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def _np(col, fill=0, dtype=None):
    a = pc.fill_null(col, fill).to_numpy(zero_copy_only=False)
    return a.astype(dtype) if dtype is not None else a


def source_order(t: pa.Table) -> np.ndarray:
    """Row order by (source_uri, source_record): deterministic across runners."""
    return np.asarray(pc.sort_indices(t, [("source_uri", "ascending"), ("source_record", "ascending")]))


def sorted_by_source(t: pa.Table) -> pa.Table:
    """`t` in (source_uri, source_record) order, as `t.take(source_order(t))`.

    A bucket is a concatenation of shards, and each shard is a run of one
    file's rows in line order; ordering the shards (zero-copy) then suffices,
    which is checked here. Anything else gets the full sort. Measured on an
    18.8k-row bucket: 0.8 ms instead of 3.7 ms for the sort and the take of
    every column (about 0.3 CPU-s over the 2M-record benchmark)."""
    if t.num_rows == 0:
        return t
    runs = _source_runs(t)
    if runs is None or any(nxt[0] <= prev[1] for prev, nxt in zip(runs, runs[1:])):
        return t.take(pa.array(source_order(t)))
    return pa.Table.from_batches([b for _, _, b in runs], schema=t.schema)


def _source_runs(t: pa.Table) -> list | None:
    """Non-empty batches as ((uri, first line), (uri, last line), batch), by
    first line; None unless each batch is one file's lines, increasing."""
    runs = []
    for b in t.to_batches():
        if b.num_rows == 0:
            continue
        uri, rec = b.column("source_uri"), b.column("source_record")
        first = uri[0].as_py()
        r = rec.to_numpy(zero_copy_only=False)
        if rec.null_count or first is None or (len(r) > 1 and not (r[1:] > r[:-1]).all()) \
                or not pc.all(pc.equal(uri, first)).as_py():
            return None
        runs.append(((first, int(r[0])), (first, int(r[-1])), b))
    return sorted(runs, key=lambda x: x[0])


def free_space_ceiling_dbm(tx_power_dbm, gain_b_dbi10, gain_w_dbi10, distance_m, frequency_hz,
                           speed_of_light_mps=2.998e8):
    """Strongest signal a witness can honestly report: tx power plus both
    antenna gains (dBi×10, truncated to whole dB like the reference) minus the
    free-space path loss 20·log10(4π·d·f/c)."""
    gb = np.floor_divide(np.asarray(gain_b_dbi10, dtype=np.int64), 10)
    gw = np.floor_divide(np.asarray(gain_w_dbi10, dtype=np.int64), 10)
    with np.errstate(divide="ignore", invalid="ignore"):
        fspl = 20 * np.log10(4 * math.pi * np.asarray(distance_m, dtype=np.float64)
                             * np.asarray(frequency_hz, dtype=np.float64) / float(speed_of_light_mps))
    return np.asarray(tx_power_dbm, dtype=np.float64) + gb + gw - fspl


def _denied(keys, deny: pa.Table) -> np.ndarray:
    solo = deny.filter(pc.is_null(deny.column("witness_key")))
    if solo.num_rows == 0:
        return np.zeros(len(keys), dtype=bool)
    return _np(pc.is_in(keys, value_set=solo.column("pub_key").combine_chunks()), False, bool)


def verify_beacons(beacons: pa.Table, registry: pa.Table, deny: pa.Table, entropy: pa.Table | None,
                   consts: Constants, now_ms: int, reg_index: KeyIndex | None = None) -> pa.Table:
    """All beacons of some set of gateways → beacons with verdict and reasons."""
    t = sorted_by_source(beacons)
    n = t.num_rows
    keys = t.column("pub_key")
    reg = lookup(keys, registry, reg_index)
    received = _np(t.column("received_timestamp"), 0, np.int64)
    # Irregular interval: a later beacon of the same gateway in the same fixed bucket.
    bucket = received // int(consts["beacon_interval_ms"])
    key_codes = _np(pc.dictionary_encode(keys).combine_chunks().indices, 0, np.int64) if n else np.zeros(0, np.int64)
    order = lexsort((received, key_codes))
    ks, bs = key_codes[order], bucket[order]
    later = np.zeros(n, dtype=bool)
    later[1:] = (ks[1:] == ks[:-1]) & (bs[1:] == bs[:-1])
    irregular = np.zeros(n, dtype=bool)
    irregular[order] = later
    entropy_start = np.full(n, -1, dtype=np.int64)
    if entropy is not None:
        idx = _np(pc.index_in(t.column("remote_entropy"), value_set=entropy.column("data").combine_chunks()), -1, np.int64)
        ts = entropy.column("timestamp").to_numpy()
        entropy_start = np.where(idx >= 0, ts[np.clip(idx, 0, None)] if len(ts) else -1, -1)
    ctx = {
        "reg": reg,
        "cell": gather(registry, reg, "location", 0).astype(np.uint64),
        "full": gather(registry, reg, "is_full_hotspot", False).astype(bool),
        "denied": _denied(keys, deny),
        "irregular": irregular,
        "entropy_checked": np.full(n, entropy is not None),
        "entropy_start": entropy_start,
        "received": received,
        "device_ms": _np(t.column("timestamp"), 0, np.int64) // 1_000_000,
        "now_ms": np.int64(now_ms),
    }
    m = evaluate(BEACON_RULES, ctx, consts, n)
    reasons = reasons_from_matrix(BEACON_RULES, m)
    cell = ctx["cell"]
    return t.append_column("beaconer_cell", pa.array(cell, pa.uint64(), mask=cell == 0)) \
            .append_column("beaconer_region", _take_region(registry, reg)) \
            .append_column("verdict", verdicts(reasons)) \
            .append_column("reasons", reasons)


def _take_region(registry: pa.Table, reg: np.ndarray) -> pa.Array:
    """The registry region of each row (null where the key is not in the
    registry), taken in Arrow: a numpy gather of the region strings made a
    Python string per registry row for every bucket."""
    region = registry.column("region")
    if len(region) == 0:
        return pa.nulls(len(reg), pa.string())
    return region.take(pa.array(np.clip(reg, 0, None), pa.int64(), mask=reg < 0)).combine_chunks().cast(pa.string())


def _join_to_beacons(w: pa.Table, b: pa.Table, window_ms: int) -> np.ndarray:
    """Index into `b` of each witness's beacon (same payload, nearest receipt in window), -1 if none."""
    nw = w.num_rows
    if nw == 0 or b.num_rows == 0:
        return np.full(nw, -1, dtype=np.int64)
    left = pa.table({"data": w.column("data"), "_wi": pa.array(np.arange(nw))})
    right = pa.table({"data": b.column("data"), "_bi": pa.array(np.arange(b.num_rows))})
    j = left.join(right, "data", join_type="inner")
    if j.num_rows == 0:
        return np.full(nw, -1, dtype=np.int64)
    wi = j.column("_wi").to_numpy()
    bi = j.column("_bi").to_numpy()
    wr = _np(w.column("received_timestamp"), 0, np.int64)[wi]
    br = _np(b.column("received_timestamp"), 0, np.int64)[bi]
    dt = np.abs(wr - br)
    ok = dt <= window_ms
    wi, bi, dt = wi[ok], bi[ok], dt[ok]
    order = lexsort((bi, dt, wi))
    wi, bi = wi[order], bi[order]
    first = np.ones(len(wi), dtype=bool)
    first[1:] = wi[1:] != wi[:-1]
    out = np.full(nw, -1, dtype=np.int64)
    out[wi[first]] = bi[first]
    return out


def _region_codes(registry: pa.Table) -> np.ndarray:
    """Registry region as integer codes, plus one trailing code for "not in
    the registry"; a null or empty region shares that code, so comparing codes
    equals comparing the regions with missing read as ""."""
    region = pc.fill_null(registry.column("region"), "")
    with_missing = pa.concat_arrays([region.combine_chunks() if isinstance(region, pa.ChunkedArray) else region,
                                     pa.array([""], pa.string())])
    return np.asarray(pc.dictionary_encode(with_missing).indices, dtype=np.int64)


def _group_first(group: np.ndarray, key: np.ndarray, *sort_keys: np.ndarray) -> np.ndarray:
    """True for rows that come after the first in their (group, key), ordered
    by sort_keys, then row.

    Rows are first ordered by (group, key) alone, which packs into one sort
    key (see transforms.order); only the rows of groups holding more than one
    row (repeats are rare: duplicate witnesses) are then ordered by every key.
    Within a (group, key) those rows come in row order, as ties of the full
    ordering do, so the result is the one a full ordering gives."""
    n = len(group)
    later = np.zeros(n, dtype=bool)
    if n < 2:
        return later
    order = lexsort((key, group))
    g, k = group[order], key[order]
    same = (g[1:] == g[:-1]) & (k[1:] == k[:-1])
    if not same.any():
        return later
    shared = np.zeros(n, dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    rows = order[shared]
    rg, rk = group[rows], key[rows]
    sub = lexsort(tuple(x[rows] for x in reversed(sort_keys)) + (rk, rg))
    sg, sk = rg[sub], rk[sub]
    after = np.zeros(len(rows), dtype=bool)
    after[1:] = (sg[1:] == sg[:-1]) & (sk[1:] == sk[:-1])
    later[rows[sub]] = after
    return later


def verify_witnesses(beacons: pa.Table, witnesses: pa.Table, registry: pa.Table, deny: pa.Table,
                     consts: Constants, now_ms: int, reg_index: KeyIndex | None = None
                     ) -> tuple[pa.Table, pa.Table]:
    """Verified beacons + raw witnesses of one payload bucket → (witness rows, beacon rows)."""
    b, w = sorted_by_source(beacons), sorted_by_source(witnesses)
    nw, nb = w.num_rows, b.num_rows
    bi = _join_to_beacons(w, b, int(consts["join_window_ms"]))
    has = bi >= 0
    bsafe = np.clip(bi, 0, None)

    def bcol(name, fill, dtype=None):
        if nb == 0:
            return np.full(nw, fill, dtype=dtype or object)
        v = _np(b.column(name), fill, dtype)[bsafe]
        return np.where(has, v, fill)

    wkeys = w.column("pub_key")
    reg_index = reg_index or KeyIndex(registry.column("pub_key"))
    reg = lookup(wkeys, registry, reg_index)
    received = _np(w.column("received_timestamp"), 0, np.int64)
    b_received = bcol("received_timestamp", 0, np.int64)
    # First witness receipt per beacon (over every witness report of the PoC).
    first = np.full(max(nb, 1), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, bi[has], received[has])
    first_witness = np.where(has, first[bsafe], 0)
    # Beacon-side values are taken per witness in Arrow (null where no
    # beacon matched); Python object arrays of keys cost ~1 µs a row.
    to_beacon = pa.array(bi, pa.int64(), mask=~has)
    b_key = b.column("pub_key").take(to_beacon) if nb else pa.nulls(nw, pa.string())
    b_reg = np.where(has, lookup(b.column("pub_key"), registry, reg_index)[bsafe], -1) if nb else np.full(nw, -1, np.int64)
    w_cell = gather(registry, reg, "location", 0).astype(np.uint64)
    b_cell = gather(registry, b_reg, "location", 0).astype(np.uint64)
    w_lat, w_lng = gather(registry, reg, "lat", np.nan), gather(registry, reg, "lng", np.nan)
    b_lat, b_lng = gather(registry, b_reg, "lat", np.nan), gather(registry, b_reg, "lng", np.nan)
    pair_known = has & (reg >= 0) & (b_reg >= 0) & (w_cell != 0) & (b_cell != 0)
    dist = np.where(pair_known, np.rint(h3util.haversine_m(b_lat, b_lng, w_lat, w_lng)), 0).astype(np.int64)
    # Grid distance only where it can be below the threshold: beyond the cut
    # the cells are provably far enough apart (a scalar H3 call per pair
    # otherwise: 406k of 1.79M benchmark witnesses were within 5 km, 17k
    # within the res-11 cut of 1,032 m).
    res, steps = int(consts["min_distance_res"]), int(consts["min_grid_distance"])
    grid = np.full(nw, np.iinfo(np.int64).max, dtype=np.int64)
    near = pair_known & (dist < h3util.grid_steps_cut_m(res, steps))
    if near.any():
        g = h3util.grid_distance(h3util.parent(b_cell[near], res), h3util.parent(w_cell[near], res))
        grid[near] = np.where(g < 0, -1, g)
    freq_b = bcol("frequency", 0, np.float64)
    tx = bcol("tx_power", 0, np.float64)
    max_rssi = free_space_ceiling_dbm(tx, gather(registry, b_reg, "gain", 0), gather(registry, reg, "gain", 0),
                                      dist, freq_b, consts["speed_of_light_mps"])
    max_rssi = np.where(pair_known & (dist > 0), max_rssi, np.nan)
    data = w.column("data")
    bad_payload = ~_np(pc.match_substring_regex(data, _B64), False, bool) | \
        _np(pc.equal(pc.utf8_length(data), 0), True, bool)
    # One code per witness key: its registry row (known keys are unique
    # there), and keys the registry lacks numbered after it. Dictionary-
    # encoding every key hashed each one again (0.24 s of thread time per
    # 1.8M witnesses) for what the registry lookup had already found.
    wkey_codes = reg.copy()
    unknown = np.flatnonzero(reg < 0)
    if len(unknown):
        enc = pc.dictionary_encode(wkeys.take(pa.array(unknown))).combine_chunks().indices
        wkey_codes[unknown] = registry.num_rows + _np(enc, 0, np.int64)
    dup = has & _group_first(bi, wkey_codes, received)
    # Edge deny list: (beaconer, witness) pairs.
    edges = deny.filter(pc.is_valid(deny.column("witness_key")))
    denied_edge = np.zeros(nw, dtype=bool)
    if edges.num_rows:
        # Pairs are built only for rows whose two keys each appear in some
        # edge: joining both keys of every row made ~100 bytes per witness.
        cand = np.flatnonzero(has & _np(pc.is_in(wkeys, value_set=edges.column("witness_key").combine_chunks()),
                                        False, bool)
                              & _np(pc.is_in(b_key, value_set=edges.column("pub_key").combine_chunks()), False, bool))
        if len(cand):
            at = pa.array(cand)
            pair = pc.binary_join_element_wise(b_key.take(at), wkeys.take(at), "\x1f")
            eset = pc.binary_join_element_wise(edges.column("pub_key"), edges.column("witness_key"), "\x1f")
            denied_edge[cand] = _np(pc.is_in(pair, value_set=eset.combine_chunks()), False, bool)
    region_codes = _region_codes(registry)
    ctx = {
        "beacon": bi, "bad_payload": bad_payload, "reg": reg, "cell": w_cell,
        "full": gather(registry, reg, "is_full_hotspot", False).astype(bool),
        "denied": _denied(wkeys, deny), "denied_edge": denied_edge,
        "self": has & _np(pc.equal(wkeys, b_key), False, bool),
        "received": received, "beacon_received": b_received, "first_witness": first_witness,
        "frequency": _np(w.column("frequency"), 0, np.float64), "beacon_frequency": freq_b,
        "pair_known": pair_known,
        "region": region_codes[np.where(reg >= 0, reg, len(region_codes) - 1)],
        "beacon_region": region_codes[np.where(b_reg >= 0, b_reg, len(region_codes) - 1)],
        "grid_distance": grid, "distance_m": dist,
        "signal_dbm": _np(w.column("signal"), 0, np.float64) / 10.0, "max_rssi": max_rssi,
        "duplicate": dup,
        "device_ms": _np(w.column("timestamp"), 0, np.int64) // 1_000_000,
        "now_ms": np.int64(now_ms),
    }
    m = evaluate(WITNESS_RULES, ctx, consts, nw)
    # A witness of an invalid beacon inherits the beacon's reasons first.
    if nb:
        b_reasons = b.column("reasons").combine_chunks()
        inherited = b_reasons.take(pa.array(bi, mask=~has))
        inherited = pc.if_else(pc.is_null(inherited), pa.scalar([], pa.list_(pa.string())), inherited)
    else:
        inherited = pa.array([[]] * nw, pa.list_(pa.string()))
    reasons = reasons_from_matrix(WITNESS_RULES, m, prefix=inherited)
    verdict = verdicts(reasons)
    beacon_bad = _np(pc.greater(pc.list_value_length(inherited), 0), False, bool)
    valid = _np(pc.equal(verdict, "valid"), False, bool)
    # Selection: the first N valid witnesses of each beacon by receipt.
    rank_grp = np.where(valid, bi, -1)
    order = lexsort((received, rank_grp))
    g = rank_grp[order]
    start = np.ones(nw, dtype=bool)
    start[1:] = g[1:] != g[:-1]
    idx = np.arange(nw)
    first_pos = np.maximum.accumulate(np.where(start, idx, 0))
    rank = np.empty(nw, dtype=np.int64)
    rank[order] = idx - first_pos
    selected = valid & (rank < int(consts["max_selected_witnesses"]))

    lag = np.where(b_received <= first_witness, received - b_received, received - first_witness)
    out = {f.name: w.column(f.name) for f in RAW_WITNESS}
    out.update({
        "beacon_pub_key": b_key,
        "beacon_received_timestamp": pa.array(b_received, pa.int64(), mask=~has),
        "beacon_record_sha256": b.column("record_sha256").take(to_beacon) if nb else pa.nulls(nw, pa.string()),
        "beaconer_cell": pa.array(b_cell, pa.uint64(), mask=b_cell == 0),
        "witness_cell": pa.array(w_cell, pa.uint64(), mask=w_cell == 0),
        "distance_m": pa.array(dist, pa.int64(), mask=~pair_known),
        "expected_max_rssi_dbm": pa.array(max_rssi, pa.float64(), mask=np.isnan(max_rssi)),
        "lag_ms": pa.array(lag, pa.int64(), mask=~has),
        "selected": pa.array(selected),
        "participant_side": pc.if_else(pa.array(beacon_bad), "beaconer", "witness"),
        "verdict": verdict, "reasons": reasons,
    })
    for c in _SRC:
        out[c] = w.column(c)
    names = [f.name for f in WITNESS_OUT if f.name in out]
    wt = pa.table({k: out[k] for k in names})
    # Beacon rows, with the number of witness reports joined to each.
    counts = np.bincount(bi[has], minlength=nb).astype(np.int32) if nb else np.zeros(0, np.int32)
    bt = b.append_column("witness_count", pa.array(counts, pa.int32()))
    bt = bt.select([f.name for f in BEACON_OUT if f.name in bt.column_names])
    return wt, bt


def empty_verified_beacons() -> pa.Table:
    fields = list(RAW_BEACON) + list(SOURCE_FIELDS) + [
        BEACON_OUT.field("beaconer_cell"), BEACON_OUT.field("beaconer_region"),
        BEACON_OUT.field("verdict"), BEACON_OUT.field("reasons")]
    return pa.schema(fields).empty_table()
