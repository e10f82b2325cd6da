"""Generate WeatherXM-like weather-station packets and a station registry
around three real cities, with every packet reason code present.

Stations are WS1000 (a packet every 16 s) and WS2000 (every 180 s). Values
follow November weather: a diurnal temperature cycle (peak mid-afternoon,
local solar time), humidity moving against temperature, slow synoptic
pressure changes plus the semi-diurnal tide, gusty wind with a prevailing
direction, daylight illuminance under drifting cloud, and a rain counter in
0.254 mm tips. Every few minutes a packet carries a GNSS fix.

The data covers the scored days plus the 6 h before the first (the rolling
checks' context). Files are upload slices by arrival time, so every station
spans several files: the first is gzipped JSON Lines, the last is Parquet,
the rest plain JSON Lines; time is written as epoch ms, epoch seconds or ISO
text depending on the file. A fixed set of station roles and injected faults
guarantees at least one packet per reason code, a relocated station, a
station outside its claimed cell, one without GNSS, and a few malformed
lines. Everything is vectorized numpy: 2M packets take a few seconds.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timedelta, timezone

import h3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)
NOW = "2026-11-21T00:00:00Z"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
CONTEXT_MS = 6 * HOUR_MS
STEP_S = {"WS1000": 16, "WS2000": 180}

# name, lat, lon, November climate: mean °C, diurnal half-range °C, mean hPa,
# mean % RH, daylight hours, peak lux, mean wind m/s, prevailing wind deg
CITIES = [
    ("berlin", 52.5200, 13.4050, 4.5, 2.5, 1016.0, 80.0, 8.3, 22_000, 3.5, 250),
    ("helsinki", 60.1699, 24.9384, -1.5, 1.5, 1009.0, 84.0, 6.5, 9_000, 4.0, 200),
    ("athens", 37.9838, 23.7275, 15.0, 4.0, 1018.0, 66.0, 10.0, 55_000, 3.0, 20),
]

# Station roles (index → city, model, role); further stations are ordinary.
ROLES = [
    ("berlin", "WS1000", "ws1000_faults"),   # spike, precipitation reset + rate (16 s)
    ("berlin", "WS2000", "relocated"),       # moved ~25 km on the day before the first scored day
    ("berlin", "WS2000", "broken_vane"),     # wind direction stuck all along: constant + long_constant
    ("berlin", "WS2000", "unregistered"),    # not in the registry: station_not_found
    ("helsinki", "WS2000", "frozen"),        # wind stuck overnight below 0 °C: frozen_sensor
    ("helsinki", "WS2000", "bounds_model"),  # out_of_bounds humidity, model_mismatch packets
    ("helsinki", "WS2000", "order_dupes"),   # duplicate deliveries, late packets, conflicting repeat
    ("athens", "WS2000", "outside"),         # GNSS 30 km from its claimed cell
    ("athens", "WS2000", "no_gnss"),         # never sends a fix
    ("athens", "WS2000", "outage"),          # 6 h offline, jumpy restart: unidentified_spike, low QoD
    ("athens", "WS2000", "clock"),           # spike, a future-dated and a stale packet
    ("berlin", "WS2000", "stuck_pressure"),  # pressure stuck 3 h: constant
]
MIN_STATIONS = len(ROLES)
WS1000_SHARE = 0.25


def _station_id(city: str, i: int) -> str:
    return f"WXM-{city[:3].upper()}-{i:05d}"


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / 111_320, lon + east_m / (111_320 * np.cos(np.radians(lat)))


def _smooth(rng, n_st: int, t0: int, t1: int, knot_ms: int, sigma: float, st: np.ndarray, ts: np.ndarray,
            walk: bool = True) -> np.ndarray:
    """A smooth random signal per station, linearly interpolated between knots."""
    n_k = (t1 - t0) // knot_ms + 2
    steps = rng.normal(0, sigma, (n_st, n_k))
    knots = np.cumsum(steps, axis=1) if walk else steps
    if walk:
        knots -= knots.mean(axis=1, keepdims=True)
    pos = (ts - t0) / knot_ms
    i = np.clip(np.floor(pos).astype(np.int64), 0, n_k - 2)
    f = np.clip(pos - i, 0.0, 1.0)
    return knots[st, i] * (1 - f) + knots[st, i + 1] * f


def plan_stations(n: int, rng) -> list[dict]:
    if n < MIN_STATIONS:
        raise ValueError(f"need at least {MIN_STATIONS} stations (one per scenario), got {n}")
    out = []
    counters = {c[0]: 0 for c in CITIES}
    for i in range(n):
        if i < len(ROLES):
            city, model, role = ROLES[i]
        else:
            city = CITIES[i % len(CITIES)][0]
            model = "WS1000" if (i - len(ROLES)) % round(1 / WS1000_SHARE) == 0 else "WS2000"
            role = "ordinary"
        ci = [c[0] for c in CITIES].index(city)
        counters[city] += 1
        lat0, lon0 = CITIES[ci][1], CITIES[ci][2]
        r, th = rng.uniform(500, 12_000), rng.uniform(0, 2 * math.pi)
        lat, lon = _offset(lat0, lon0, r * math.cos(th), r * math.sin(th))
        out.append({"station_id": _station_id(city, counters[city]), "city": ci, "model": model, "role": role,
                    "lat": lat, "lon": lon})
    return out


def _packets(stations: list[dict], t0: int, t1: int, rng) -> dict[str, np.ndarray]:
    """Regular packet times per station (with ±1 s jitter) → station index, ts."""
    sts, tss = [], []
    for k, s in enumerate(stations):
        start = t0 - DAY_MS if s["role"] == "relocated" else t0   # a day more history: see ROLES
        end = t1
        step = STEP_S[s["model"]] * 1000
        phase = int(rng.integers(0, step // 1000)) * 1000
        ts = np.arange(start + phase, end, step, dtype=np.int64)
        if s["role"] == "unregistered":
            ts = ts[(ts >= t0 + 14 * HOUR_MS) & (ts < t0 + 18 * HOUR_MS)]
        if s["role"] == "outage":   # silent 06:00–12:00 of the first scored day
            ts = ts[(ts < t0 + CONTEXT_MS + 6 * HOUR_MS) | (ts >= t0 + CONTEXT_MS + 12 * HOUR_MS)]
        sts.append(np.full(len(ts), k, dtype=np.int64))
        tss.append(ts)
    st = np.concatenate(sts)
    ts = np.concatenate(tss)
    ts = ts // 1000 * 1000 + rng.integers(-1, 2, len(ts)) * 1000   # whole seconds, ±1 s jitter
    keep = (ts >= np.where(st == [s["role"] for s in stations].index("relocated"), t0 - DAY_MS, t0)) & (ts < t1)
    return {"st": st[keep], "ts": ts[keep]}


def _weather(stations, st, ts, t0, t1, rng) -> dict[str, np.ndarray]:
    n_st = len(stations)
    city = np.array([s["city"] for s in stations])[st]
    lon = np.array([s["lon"] for s in stations])[st]
    C = np.array([c[3:] for c in CITIES], dtype=np.float64)
    t_mean, t_amp, p_mean, rh_mean, daylen, peak_lux, w_mean, w_dir = (C[city, j] for j in range(8))
    st_temp = rng.normal(0, 0.8, n_st)[st]
    st_rh = rng.normal(0, 4, n_st)[st]
    h_local = ((ts % DAY_MS) / HOUR_MS + lon / 15.0) % 24
    temp = (t_mean + st_temp + t_amp * np.sin(2 * np.pi * (h_local - 9) / 24)
            + _smooth(rng, n_st, t0 - DAY_MS, t1, 2 * HOUR_MS, 0.35, st, ts)
            + rng.normal(0, 0.05, len(ts)))
    rh = (rh_mean + st_rh - 3.0 * (temp - t_mean - st_temp)
          + _smooth(rng, n_st, t0 - DAY_MS, t1, HOUR_MS, 1.0, st, ts) + rng.normal(0, 0.6, len(ts)))
    pres = (p_mean + 6.0 * np.sin(2 * np.pi * (ts - t0) / (40 * HOUR_MS) + st.astype(float) * 0.01)
            + 0.6 * np.sin(4 * np.pi * h_local / 24)
            + _smooth(rng, n_st, t0 - DAY_MS, t1, 3 * HOUR_MS, 0.3, st, ts) + rng.normal(0, 0.04, len(ts)))
    gust = np.abs(rng.normal(0, 0.6, len(ts)))
    wind = np.maximum(0.0, w_mean * (0.8 + 0.3 * np.sin(2 * np.pi * (h_local - 8) / 24))
                      + _smooth(rng, n_st, t0 - DAY_MS, t1, HOUR_MS, 0.25, st, ts)) + gust
    wdir = (w_dir + _smooth(rng, n_st, t0 - DAY_MS, t1, HOUR_MS, 12.0, st, ts) + rng.normal(0, 12, len(ts))) % 360
    # Daylight: a half-sine between sunrise and sunset around local noon, under cloud.
    x = (h_local - (12 - daylen / 2)) / daylen
    sun = np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1)), 0.0)
    cloud = np.clip(0.65 + _smooth(rng, n_st, t0 - DAY_MS, t1, HOUR_MS // 2, 0.12, st, ts, walk=False), 0.2, 1.0)
    lux = peak_lux * sun * cloud
    # Rain: a few showers per station; the counter tips in 0.254 mm steps.
    rain_rate = np.maximum(0.0, _smooth(rng, n_st, t0 - DAY_MS, t1, HOUR_MS, 1.0, st, ts, walk=False) - 1.2) * 1.5
    dt_h = np.diff(ts, prepend=ts[0]) / HOUR_MS
    dt_h[np.r_[True, st[1:] != st[:-1]]] = 0.0
    cum = np.cumsum(rain_rate * np.clip(dt_h, 0, 1))
    first = np.r_[True, st[1:] != st[:-1]]
    base = np.maximum.accumulate(np.where(first, np.arange(len(st)), 0))
    cum = cum - cum[base]
    start_counter = np.floor(rng.uniform(0, 400, n_st) / 0.254)[st] * 0.254
    precip = np.round(np.floor((start_counter + cum) / 0.254 + 1e-9) * 0.254, 3)
    return {
        "temperature": np.round(temp, 1),
        "humidity": np.round(np.clip(rh, 15, 98)),
        "pressure": np.round(pres, 1),
        "wind_speed": np.round(wind, 1),
        "wind_direction": np.round(wdir) % 360,
        "illuminance": np.round(lux),
        "precipitation_accumulated": precip,
    }


def _gnss(stations, st, ts, t0, rng) -> dict[str, np.ndarray]:
    """A fix about every 10 minutes; 3 % of fixes inaccurate (> 50 m)."""
    n = len(ts)
    lat = np.array([s["lat"] for s in stations])[st]
    lon = np.array([s["lon"] for s in stations])[st]
    role = np.array([s["role"] for s in stations], dtype=object)[st]
    moved = (role == "relocated") & (ts >= t0 + CONTEXT_MS - DAY_MS)   # from 00:00 of the day before day 1
    nlat, nlon = _offset(lat, lon, 18_000.0, 18_000.0)
    lat, lon = np.where(moved, nlat, lat), np.where(moved, nlon, lon)
    fix = (ts // 1000) % 600 < np.array([STEP_S[s["model"]] for s in stations])[st]
    fix &= role != "no_gnss"
    acc = rng.uniform(2.0, 12.0, n)
    bad = rng.random(n) < 0.03
    acc = np.where(bad, rng.uniform(60, 150, n), acc)
    noise = acc / 2 / 111_320
    flat = np.round(lat + rng.normal(0, 1, n) * noise, 6)
    flon = np.round(lon + rng.normal(0, 1, n) * noise / np.cos(np.radians(lat)), 6)
    nan = np.full(n, np.nan)
    return {"lat": np.where(fix, flat, nan), "lon": np.where(fix, flon, nan),
            "gnss_accuracy_m": np.where(fix, np.round(acc, 1), nan)}


def _faults(stations, d: dict, t0: int, now_ms: int, rng) -> dict:
    """Station-role faults in place, then extra packets (duplicates, late, future, stale)."""
    st, ts = d["st"], d["ts"]
    role = {s["role"]: k for k, s in enumerate(stations)}
    day0 = t0 + CONTEXT_MS
    d["arrival"] = ts.copy()

    def rows(k, a_h, b_h):
        return np.nonzero((st == k) & (ts >= day0 + a_h * HOUR_MS) & (ts < day0 + b_h * HOUR_MS))[0]

    # WS1000: a +6 °C spike for one packet, a counter reset to 0 and a 30 mm jump in 16 s.
    k = role["ws1000_faults"]
    i = rows(k, 13, 14)[100]
    d["temperature"][i] += 6.0
    r = rows(k, 9, 99)
    d["precipitation_accumulated"][r] -= d["precipitation_accumulated"][r[0]]  # reset at 09:00
    r = rows(k, 17, 99)
    d["precipitation_accumulated"][r] += 30.48                                # 120 tips in one packet
    # Broken vane: direction stuck at 270° from the first packet to the last.
    d["wind_direction"][st == role["broken_vane"]] = 270.0
    k = role["broken_vane"]
    d["humidity"][st == k] = np.clip(d["humidity"][st == k] - 12.0, 15.0, 98.0)   # dry enough not to excuse it
    # Frozen: overnight (00:00–08:00) the anemometer and vane stop below 0 °C.
    k = role["frozen"]
    r = rows(k, 0, 8)
    d["wind_speed"][r] = 0.0
    d["wind_direction"][r] = 185.0
    d["temperature"][r] = np.minimum(d["temperature"][r], np.round(-2.0 - rng.uniform(0, 0.6, len(r)), 1))
    # Bounds and model: humidity 120 % once; packets claiming the wrong model.
    k = role["bounds_model"]
    d["humidity"][rows(k, 10, 11)[5]] = 120.0
    d["model"][rows(k, 11, 12)[:3]] = "WS1000"
    d["model"][rows(k, 12, 13)[0]] = "WS3000"
    # Outage restart: the third packet after coming back reads +12 °C.
    k = role["outage"]
    d["temperature"][rows(k, 12, 13)[2]] += 12.0
    # A WS2000 spike with a full median window; pressure stuck 3 h.
    k = role["clock"]
    d["temperature"][rows(k, 15, 16)[6]] += 14.0
    k = role["stuck_pressure"]
    r = rows(k, 12, 15.5)
    d["pressure"][r] = d["pressure"][r[0]]

    extra = []
    k = role["order_dupes"]
    for i in rows(k, 9, 10)[:3]:                       # delivered again two hours later
        extra.append((i, {"arrival": ts[i] + 2 * HOUR_MS}))
    for i in rows(k, 14, 15)[4:6]:                     # arrive 20 min late in the same upload
        d["arrival"][i] = ts[i] + 20 * 60_000
    i = rows(k, 16, 17)[3]                             # same time, different values
    extra.append((i, {"arrival": ts[i] + 60_000, "temperature": d["temperature"][i] + 0.4}))
    k = role["clock"]
    i = rows(k, 8, 9)[0]
    extra.append((i, {"ts": now_ms + 3 * HOUR_MS, "arrival": ts[i]}))      # clock ahead: future
    i = rows(k, 8, 9)[1]
    extra.append((i, {"ts": day0 - 40 * DAY_MS, "arrival": ts[i]}))        # a stale packet resent
    if extra:
        idx = np.array([e[0] for e in extra])
        add = {c: v[idx].copy() for c, v in d.items()}
        for j, (_, over) in enumerate(extra):
            for c, v in over.items():
                add[c][j] = v
        d = {c: np.concatenate([v, add[c]]) for c, v in d.items()}
    return d


MALFORMED = [
    b'{"station_id": "WXM-BER-00002", "model": "WS2000", "timestamp": 17956',       # cut mid-upload
    b'["WXM-BER-00002", "WS2000", 1795662000000, 4.1]',                           # not an object
    b'{"model": "WS2000", "timestamp": 1795662000000, "temperature": 4.2}',        # no station_id
    b'{"station_id": "WXM-HEL-00002", "timestamp": 1795662000000, "temperature": "cold"}',  # wrong type
    b'{"station_id": "WXM-ATH-00002", "model": "WS2000", "temperature": 15.2}',    # no time at all
]


def _file_table(d: dict, stations, sel: np.ndarray, time_form: str) -> pa.Table:
    ids = np.array([s["station_id"] for s in stations], dtype=object)
    cols = {"station_id": pa.array(ids[d["st"][sel]], pa.string()),
            "model": pa.array(d["model"][sel], pa.string())}
    ts = d["ts"][sel]
    if time_form == "iso":   # WeatherXM-style text: 2026-11-20T01:02:03.456Z
        import pyarrow.compute as pc
        cols["utc_datetime"] = pc.strftime(pa.array(ts, pa.timestamp("ms", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")
    elif time_form == "s":
        cols["timestamp"] = pa.array(ts // 1000, pa.int64())
    else:
        cols["timestamp"] = pa.array(ts, pa.int64())
    for c in ("temperature", "humidity", "pressure", "wind_speed", "wind_direction", "illuminance",
              "precipitation_accumulated", "lat", "lon", "gnss_accuracy_m"):
        v = d[c][sel]
        cols[c] = pa.array(v, pa.float64(), mask=np.isnan(v))
    return pa.table(cols)


def _write_jsonl(t: pa.Table, path: str, gz: bool) -> None:
    import duckdb
    con = duckdb.connect()
    con.register("t", t)
    comp = "gzip" if gz else "none"
    con.execute(f"COPY (SELECT * FROM t) TO '{path}' (FORMAT JSON, COMPRESSION '{comp}')")
    con.close()


def generate(out: str, stations: int = 12, days: int = 1, seed: int = 7, files: int = 5,
             rows: int | None = None, start: datetime = DAY, now: str = NOW) -> dict:
    """Write readings-*.jsonl[.gz|.parquet] and stations.csv to `out`; returns counts.

    `rows` (≈ packets) overrides `stations`. Covers `days` UTC days from
    `start` plus the 6 h before; packets after `now` are not generated."""
    if files < 3:
        raise ValueError("files must be ≥ 3 (one .jsonl.gz, one .parquet, plain JSON Lines)")
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    span_h = 24 * days + 6
    if rows:
        per_station = span_h * 3600 * (WS1000_SHARE / 16 + (1 - WS1000_SHARE) / 180)
        stations = max(MIN_STATIONS, int(round(rows / per_station)))
    t0 = int(start.timestamp() * 1000) - CONTEXT_MS
    now_ms = int(datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp() * 1000)
    t1 = min(t0 + span_h * HOUR_MS, now_ms)
    plan = plan_stations(stations, rng)
    d = _packets(plan, t0, t1, rng)
    d.update(_weather(plan, d["st"], d["ts"], t0, t1, rng))
    d.update(_gnss(plan, d["st"], d["ts"], t0, rng))
    d["model"] = np.array([s["model"] for s in plan], dtype=object)[d["st"]]
    d = _faults(plan, d, t0, now_ms, rng)
    d["precipitation_accumulated"] = np.round(d["precipitation_accumulated"], 3)

    # Registry: claimed res-7 cell of the (original) site; the "outside" station claims 30 km away.
    with open(os.path.join(out, "stations.csv"), "w") as f:
        f.write("station_id,model,claimed_cell,claimed_at\n")
        for s in plan:
            if s["role"] == "unregistered":
                continue
            lat, lon = s["lat"], s["lon"]
            if s["role"] == "outside":
                lat, lon = _offset(lat, lon, 30_000.0, 0.0)
            claimed = (start - timedelta(days=int(rng.integers(30, 400)))).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write(f"{s['station_id']},{s['model']},{h3.latlng_to_cell(lat, lon, 7)},{claimed}\n")

    # Upload slices by arrival time; within a file, arrival order.
    order = np.lexsort((d["st"], d["arrival"]))
    d = {c: v[order] for c, v in d.items()}
    edges = np.linspace(t0, t1, files + 1)[1:-1]
    which = np.searchsorted(edges, d["arrival"], side="right")
    names = []
    forms = ("ms", "iso", "s")
    for i in range(files):
        sel = np.nonzero(which == i)[0]
        if i == files - 1:
            name = f"readings-{i:04d}.parquet"
            pq.write_table(_file_table(d, plan, sel, "ms"), os.path.join(out, name), compression="zstd")
        else:
            gz = i == 0
            name = f"readings-{i:04d}.jsonl" + (".gz" if gz else "")
            _write_jsonl(_file_table(d, plan, sel, forms[i % 3]), os.path.join(out, name), gz)
        names.append(name)
    # A few malformed lines in the middle of the second file.
    path = os.path.join(out, names[1])
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    mid = len(lines) // 2
    lines[mid:mid] = MALFORMED
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))
    return {"readings": int(len(d["ts"])), "stations": len(plan),
            "registered": sum(s["role"] != "unregistered" for s in plan),
            "ws1000": sum(s["model"] == "WS1000" for s in plan), "files": names, "malformed": len(MALFORMED)}


if __name__ == "__main__":  # pragma: no cover
    import sys
    print(json.dumps(generate(sys.argv[1])))
