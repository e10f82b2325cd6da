"""Generate dashcam / street-level imagery frame metadata: realistic drives on
the street grids of three real cities, with every imagery reason code present.

Cameras (one day, 2026-11-20 UTC):
- Hivemapper-like dashcams trigger by distance: a frame every ~8 m of travel,
  none while the car stands still (a long stop is a time gap).
- Time-lapse dashcams shoot every 1 or 2 s at 10–25 m/s cruise, and keep
  shooting at red lights (the frames bunch up, and sometimes duplicate).
- Mapillary uploads (GoPro time-lapse, 2 s) come as image descriptions, one
  sequence per camera run, at most 500 images each (mapillary_tools' cut).

A drive is a walk on the city's street grid, at its real orientation and
block size (Manhattan 29°, 80 × 260 m; Barcelona's Eixample 44.5°, 133 m;
Chicago 0°, 201 m): straight runs of several blocks, 90° turns, stops at
some intersections, speed ramps (no instant accelerations). Positions carry
a slowly drifting GNSS error plus jitter; urban-canyon episodes degrade HDOP,
satellites and fix and add error.

Files are upload slices by arrival time (`received_at`), so drives under way
at a slice boundary are split across two files: `frames-0000.jsonl.gz` is
the raw Hivemapper-API form (`deviceId`, `t` ms, `lng`, numeric fix),
`frames-0001…` the hexsieve form (ISO 8601 text times), `mapillary-0000.jsonl`
Mapillary image descriptions; `devices.csv` is the device registry. A fixed
set of injected faults (scaled with --rows) guarantees at least one frame per
reason code, and each file family gets a few malformed lines.

Per-drive work is numpy; strings and JSON are produced by DuckDB from Arrow
columns, so 2M frames take a few seconds.
"""
from __future__ import annotations

import gzip
import math
import os
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)
NOW = "2026-11-21T00:00:00Z"
DAY_MS = 86_400_000
DAY0_MS = int(DAY.timestamp() * 1000)
NOW_MS = DAY0_MS + DAY_MS
R_EARTH = 6371007.180918475
M_PER_DEG = R_EARTH * math.pi / 180

# name, lat, lon, bearing of the grid's y axis (deg from true north),
# block pitch along x and y (m), ground altitude (m), UTC offset in November (h)
CITIES = [
    ("manhattan", 40.7580, -73.9855, 29.0, 260.0, 80.0, 20.0, -5),
    ("barcelona", 41.3920, 2.1630, 44.5, 133.0, 133.0, 35.0, 1),
    ("chicago", 41.8800, -87.6300, 0.0, 201.0, 201.0, 180.0, -6),
]
GRID_DT = 0.5          # s: speed-profile resolution
MIN_RUN_M = 250.0      # straight run between turns: no block-sized U-turns
MAP_SEQ_MAX = 500      # mapillary_tools cuts sequences at 500 images

# kind → (make, model, mode, frame parameter, cruise m/s range)
HIVEMAPPER = ("Hivemapper", "HDC-S", "distance", 8.0, (5.0, 15.0))
DASHCAMS = [("Nextbase", "622GW", "time", 1.0, (10.0, 25.0)),
            ("Garmin", "Dash Cam 67W", "time", 2.0, (10.0, 25.0))]
MAPILLARY = [("GoPro", "HERO11 Black", "time", 2.0, (10.0, 25.0)),
             ("GoPro", "MAX", "time", 1.0, (10.0, 20.0))]


# --- one drive ----------------------------------------------------------------

def _route(rng, city, length_m: float):
    """Vertices (east, north m from the city centre) of a grid walk ≥ length_m."""
    bearing, px, py = city[3:6]
    pitch = np.array([px, py])
    n_seg = int(length_m / MIN_RUN_M) + 3
    start = np.array([rng.integers(-int(2500 / px), int(2500 / px) + 1),
                      rng.integers(-int(2500 / py), int(2500 / py) + 1)])
    axis = (int(rng.integers(2)) + np.arange(n_seg)) % 2          # alternate: every run ends in a turn
    blocks = rng.integers(2, 7, n_seg)
    blocks = np.maximum(blocks, np.ceil(MIN_RUN_M / pitch[axis]).astype(int))
    sign = rng.choice([-1, 1], n_seg)
    step = np.zeros((n_seg, 2))
    step[np.arange(n_seg), axis] = sign * blocks * pitch[axis]
    g = np.vstack([start * pitch, start * pitch + np.cumsum(step, axis=0)])
    th = math.radians(bearing)
    east = g[:, 0] * math.cos(th) + g[:, 1] * math.sin(th)
    north = -g[:, 0] * math.sin(th) + g[:, 1] * math.cos(th)
    return np.stack([east, north], axis=1)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    k = np.ones(width) / width
    return np.convolve(np.concatenate([np.full(width, x[0]), x, np.full(width, x[-1])]), k, "same")[width:-width]


def _drive(rng, city, mode: str, param: float, vrange, n_target: int, force_stop: bool = False) -> dict:
    """Frames of one drive: offsets t (ms), east/north (m), heading, speed, stopped."""
    v_lo, v_hi = vrange
    need = n_target * param if mode == "distance" else n_target * param * v_hi
    verts = _route(rng, city, need * 1.15 + 600)
    seg = np.diff(verts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    n_seg = len(seg_len)
    # Speed schedule: cruise per run, a stop at some intersections, rare long halts.
    cruise = rng.uniform(v_lo, v_hi, n_seg)
    stop_s = np.where(rng.random(n_seg) < 0.35, rng.uniform(4, 40, n_seg), 0.0)
    stop_s = np.where(rng.random(n_seg) < 0.03, rng.uniform(65, 150, n_seg), stop_s)
    if force_stop and n_seg > 1:
        stop_s[0] = rng.uniform(25, 40)
    stop_s[-1] = 0.0
    run_n = np.ceil(seg_len / cruise / GRID_DT).astype(int)
    stop_n = np.ceil(stop_s / GRID_DT).astype(int)
    vals = np.stack([cruise, np.zeros(n_seg)], axis=1).ravel()
    reps = np.stack([run_n, stop_n], axis=1).ravel()
    target = np.repeat(vals, reps)
    v = np.clip(_smooth(target, 12), 0.0, None)          # ~6 s ramps: ≤ 2.5 m/s²
    v[np.concatenate([[True], target[1:] == 0]) & (v < 0.4)] = 0.0
    s = np.cumsum(v * GRID_DT)
    tg = np.arange(len(v)) * GRID_DT
    if mode == "distance":
        sk = np.arange(n_target) * param + rng.uniform(-0.2, 0.2, n_target)
        sk[0] = 0.0
        sk = sk[sk < s[-1]]
        tk = np.interp(sk, s + tg * 1e-9, tg)
    else:
        tk = np.arange(n_target) * param
        tk = tk[tk <= tg[-1]]
        sk = np.interp(tk, tg, s)
    sk = np.minimum(sk, cum[-1])
    i = np.clip(np.searchsorted(cum, sk, side="right") - 1, 0, n_seg - 1)
    u = seg[i] / seg_len[i, None]
    pos = verts[i] + u * (sk - cum[i])[:, None]
    heading = np.degrees(np.arctan2(u[:, 0], u[:, 1])) % 360.0
    vk = np.interp(tk, tg, v)
    return {"t": np.round(tk * 1000).astype(np.int64), "east": pos[:, 0], "north": pos[:, 1],
            "heading": heading, "speed": vk, "stopped": vk < 0.3}


def _parked(rng, east: float, north: float, heading: float, dt: float, n: int) -> dict:
    """A camera left shooting in a parked car: n frames within a few metres."""
    return {"t": np.round(np.arange(n) * dt * 1000).astype(np.int64), "east": np.full(n, east),
            "north": np.full(n, north), "heading": np.full(n, heading), "speed": np.zeros(n),
            "stopped": np.ones(n, bool)}


def _gnss(rng, t_s: np.ndarray) -> dict:
    """Slow GNSS drift + jitter, and urban-canyon episodes (bad DOP, few satellites, 2D fix)."""
    n = len(t_s)
    span = max(1, int(t_s[-1] / GRID_DT) + 2) if n else 1
    drift = np.stack([_smooth(rng.normal(0, 1, span + 60), 60)[:span] * 1.2 * math.sqrt(60)
                      for _ in range(2)], axis=1)
    gi = np.clip((t_s / GRID_DT).astype(int), 0, span - 1)
    err = drift[gi] + rng.normal(0, 0.15, (n, 2))
    sats = rng.integers(9, 23, n)
    hdop = np.round(0.55 + rng.gamma(2.0, 0.18, n), 2)
    eph = np.round(hdop * rng.uniform(1.6, 3.2, n), 2)
    fix = np.full(n, 3, np.int8)
    canyon = np.zeros(n, bool)
    for _ in range(rng.poisson(1.2 * t_s[-1] / 1800.0) if n else 0):       # ~1.2 per half hour
        a = rng.uniform(0, t_s[-1])
        m = (t_s >= a) & (t_s < a + rng.uniform(4, 40))
        if not m.any():
            continue
        k = int(m.sum())
        hdop[m] = np.round(rng.uniform(2.5, 8.0, k), 2)
        sats[m] = rng.integers(3, 8, k)
        eph[m] = np.round(hdop[m] * rng.uniform(2.0, 4.0, k), 2)
        fix[m] = np.where((sats[m] < 5) & (rng.random(k) < 0.5), 2, 3)
        ang = rng.uniform(0, 2 * math.pi)
        err[m] += 0.7 * eph[m, None] * np.array([math.cos(ang), math.sin(ang)])
        canyon |= m
    return {"err": err, "satellites": sats, "hdop": hdop, "gdop": np.round(hdop * rng.uniform(1.5, 1.9, n), 2),
            "eph": eph, "fix": fix, "canyon": canyon}


# --- the fleet ----------------------------------------------------------------

def _fleet(rng, rows: int) -> list[dict]:
    """Devices with a day's frame budget each: ~62 % of frames from Hivemapper
    cameras, 23 % time-lapse dashcams, 15 % Mapillary uploads."""
    plan = [("hivemapper", 0.62, [HIVEMAPPER], 3, 12_000), ("dashcam", 0.23, DASHCAMS, 2, 12_000),
            ("mapillary", 0.15, MAPILLARY, 2, 5_000)]
    fleet = []
    for kind, share, models, minimum, per_device in plan:
        budget = rows * share
        n_dev = max(minimum, math.ceil(budget / per_device))
        for j in range(n_dev):
            make, model, mode, param, vr = models[j % len(models)]
            fleet.append({"kind": kind, "make": make, "model": model, "mode": mode, "param": param, "vrange": vr,
                          "budget": int(budget / n_dev), "city": len(fleet) % len(CITIES),
                          "id": rng.bytes(6).hex()})
    return fleet


def _simulate(rng, rows: int) -> tuple[dict, list[dict]]:
    fleet = _fleet(rng, rows)
    parts: list[dict] = []
    drive_no = 0
    for di, dev in enumerate(fleet):
        city = CITIES[dev["city"]]
        cursor = DAY0_MS + int((rng.uniform(6.0, 9.0) - city[7]) * 3_600_000)   # local morning
        left, first = dev["budget"], True
        while left > 30 and cursor < DAY0_MS + DAY_MS - 2_400_000:
            lo, hi = (150, MAP_SEQ_MAX) if dev["kind"] == "mapillary" else (300, 2500)
            n = int(min(left, rng.integers(lo, hi + 1)))
            if 0 < left - n < 60:
                n = left
            d = _drive(rng, city, dev["mode"], dev["param"], dev["vrange"], n,
                       force_stop=dev["mode"] == "time")
            sessions = [(d, False)]
            if dev["kind"] == "dashcam" and (first or rng.random() < 0.05):
                e, no, h = d["east"][-1], d["north"][-1], d["heading"][-1]
                sessions.append((_parked(rng, e, no, h, dev["param"], int(rng.integers(15, 30))), True))
            start = cursor
            for sess, parked in sessions:
                m = len(sess["t"])
                if m < 2:
                    continue
                t_abs = start + sess["t"]
                q = _gnss(rng, sess["t"] / 1000.0)
                if parked:
                    q["err"] = q["err"] * 0.25 + rng.normal(0, 0.05, (m, 2))
                delay = int(rng.uniform(20_000, 900_000))
                parts.append({
                    "device": np.full(m, di, np.int32), "drive": np.full(m, drive_no, np.int32),
                    "k": np.arange(m, dtype=np.int32), "len": np.full(m, m, np.int32),
                    "parked": np.full(m, parked), "captured": t_abs,
                    "received": t_abs + delay + rng.integers(0, 4000, m),
                    "east": sess["east"] + q["err"][:, 0], "north": sess["north"] + q["err"][:, 1],
                    "heading": np.round((sess["heading"] + rng.normal(0, 1.5, m)) % 360.0, 1),
                    "speed": np.round(np.maximum(sess["speed"] + rng.normal(0, 0.2, m), 0) * (sess["speed"] > 0), 2),
                    "stopped": sess["stopped"], "canyon": q["canyon"], "satellites": q["satellites"],
                    "hdop": q["hdop"], "gdop": q["gdop"], "eph": q["eph"], "fix": q["fix"],
                })
                drive_no += 1
                start = int(t_abs[-1]) + int(rng.uniform(90, 300) * 1000)
            first = False
            left -= n
            cursor = start + int(rng.uniform(3, 40) * 60_000)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(cols["k"])
    cols["alt"] = np.round(np.array([CITIES[d["city"]][6] for d in fleet])[cols["device"]]
                           + 1.5 + rng.normal(0, 2.0, n), 1)
    cols["bytes"] = np.where(np.array([d["kind"] == "mapillary" for d in fleet])[cols["device"]],
                             rng.lognormal(math.log(1_150_000), 0.18, n),
                             rng.lognormal(math.log(430_000), 0.22, n)).astype(np.int64)
    cols["bytes"] = np.clip(cols["bytes"], 60_000, 1_900_000)
    cols["image"] = np.arange(n, dtype=np.int64)      # which image's bytes this frame carries
    return cols, fleet


# --- faults -------------------------------------------------------------------

def _inject(rng, c: dict, fleet: list[dict], reps: int) -> dict:
    """At least `reps` frames per reason code, on clean frames well inside drives."""
    n = len(c["k"])
    kind = np.array([d["kind"] for d in fleet])[c["device"]]
    mode = np.array([d["mode"] for d in fleet])[c["device"]]
    param = np.array([d["param"] for d in fleet])[c["device"]]
    mapy = kind == "mapillary"
    clean = ~c["canyon"] & ~c["parked"] & ~c["stopped"]
    ok = clean & (c["k"] % 15 == 8) & (c["k"] + 8 < c["len"])
    win = np.lib.stride_tricks.sliding_window_view(np.pad(clean, 6, constant_values=False), 13).all(axis=1)
    cand = np.nonzero(ok & win)[0]
    cand = cand[rng.permutation(len(cand))]
    used = np.zeros(n, bool)
    lat_fault = {}

    def pick(eligible: np.ndarray, k: int = reps) -> np.ndarray:
        sel = cand[eligible[cand] & ~used[cand]][:k]
        used[sel] = True
        return sel

    def unit_left(p):  # unit vector 90° left of the direction of travel
        h = np.radians(c["heading"][p])
        return np.stack([-np.cos(h), np.sin(h)], axis=1)

    every = np.ones(n, bool)
    p = pick(~mapy)
    c["fix"][p] = 2                                                        # bad_fix: 2D fix
    p = pick(~mapy)
    c["satellites"][p] = rng.integers(2, 4, len(p))                        # few_satellites
    p = pick(~mapy)
    c["hdop"][p] = np.round(rng.uniform(4.2, 9.0, len(p)), 2)              # high_hdop
    p = pick(kind == "hivemapper")
    c["gdop"][p] = np.round(rng.uniform(6.5, 14.0, len(p)), 2)             # high_gdop
    p = pick(kind != "dashcam")
    c["eph"][p] = np.round(rng.uniform(12.0, 45.0, len(p)), 2)             # high_eph
    p = pick(~mapy)
    c["received"][p] = c["captured"][p] - rng.integers(120_000, 900_000, len(p))  # future: clock ahead of ingestor
    p = pick(mapy, max(1, reps // 2))
    c["captured"][p] = NOW_MS + rng.integers(3_600_000, 5 * 3_600_000, len(p))    # future: RTC jumped ahead
    p = pick(every)
    c["captured"][p] -= 12 * DAY_MS + rng.integers(0, DAY_MS, len(p))      # too_old: footage from an old card
    c["received"][p] = np.maximum(c["received"][p], c["captured"][p])
    p = pick(every)
    c["bytes"][p] = rng.integers(8_000, 25_000, len(p))                   # image_too_small: black frame
    p = pick(every)
    c["bytes"][p] = rng.integers(2_200_000, 4_000_000, len(p))            # image_too_large
    p = pick(every)
    c["image"][p] = c["image"][p - 5]                                      # duplicate_frame: re-sent image
    p = pick(every)
    c["captured"][p] = c["captured"][p - 1]                                # non_increasing_time: GPS time stuck
    p = pick(every)
    c["east"][p] += unit_left(p)[:, 0] * 300; c["north"][p] += unit_left(p)[:, 1] * 300  # too_fast: multipath
    p = pick(every)
    step = np.where(mode[p] == "distance", param[p], np.maximum(c["speed"][p], 8.0) * param[p])
    u = unit_left(p) * (2.6 * step + 6.0)[:, None]
    c["east"][p] += u[:, 0]; c["north"][p] += u[:, 1]                      # teleport: snapped to a parallel street
    # zigzag: waiting at a light in a street canyon, the fix flips between two spots 35 m apart
    stop_start = (mode == "time") & c["stopped"] & ~c["parked"] & (c["k"] > 3)
    first = np.nonzero(stop_start & ~np.concatenate([[False], c["stopped"][:-1]]))[0]
    first = np.array([f for f in first.tolist() if f + 8 <= n and c["stopped"][f:f + 8].all()
                      and c["drive"][f + 7] == c["drive"][f] and not used[f:f + 8].any()], np.int64)
    for f in first[rng.permutation(len(first))][:reps]:
        idx = np.arange(f + 1, f + 8, 2)
        u = unit_left(idx)
        c["east"][idx] += u[:, 0] * 35; c["north"][idx] += u[:, 1] * 35
        used[f:f + 8] = True
    # coordinates (applied after conversion to degrees)
    lat_fault["range"] = pick(every)
    lat_fault["null"] = pick(every)
    return lat_fault


# --- output -------------------------------------------------------------------

MALFORMED = {
    "hivemapper": [
        b"this is not json",
        b'{"deviceId": "hm-truncated", "t": 1795169730123, "lat": 40.75',
        b'[{"deviceId": "hm-array", "t": 1795169730123}]',
        b'{"deviceId": "hm-badtime", "frame_id": "x1", "t": "yesterday", "lat": 40.7, "lng": -73.9}',
        b'{"deviceId": "hm-nolat", "frame_id": "x2", "t": 1795169730123, "lng": -73.9}',
    ],
    "native": [
        b"\xff\xfe\x00garbage",
        b'{"frame_id": "x3", "device_id": "cam-x", "captured_at": "2026-11-20T10:00:00Z", "lat": "40.75N", "lon": -73.9}',
        b'{"frame_id": "x4", "device_id": "cam-x", "captured_at": "2026-11-20T10:00:01Z", "lat": 40.75, "lon": -73.9, "fix": "4D"}',
        b'{"frame_id": "x5", "device_id": "cam-x", "captured_at": {"s": 1795168802}, "lat": 40.75, "lon": -73.9}',
    ],
    "mapillary": [
        b'{"MAPLatitude": 41.39, "MAPLongitude": 2.16, "MAPCaptureTime": "2026:11:20 10:15:30", '
        b'"MAPSequenceUUID": "exif-time", "filename": "G0000001.JPG"}',
        b'{"MAPLatitude": 41.39, "MAPLongitude": 2.16, "MAPCaptureTime": "2026_11_20_10_15_30_000", '
        b'"filename": "G0000002.JPG"}',
        b'{"MAPLatitude": 41.39, "MAPLongitude": 2.16, "MAPCapt',
    ],
}

_SQL = {
    "hivemapper": """SELECT frame_id, deviceId: device_id, t: captured_at, lat, lng: lon, alt, heading, speed, hdop,
                     gdop, eph, satellites, fix, image_uri, image_sha256, bytes, received_at FROM f""",
    "native": """SELECT frame_id, device_id, sequence_id,
                 captured_at: strftime(make_timestamp(captured_at * 1000), '%Y-%m-%dT%H:%M:%S.%gZ'),
                 lat, lon, alt, heading, speed, hdop, gdop, eph, satellites,
                 fix: CASE fix WHEN 3 THEN '3D' WHEN 2 THEN '2D' ELSE 'none' END,
                 image_uri, image_sha256, bytes, device_make, device_model,
                 received_at: strftime(make_timestamp(received_at * 1000), '%Y-%m-%dT%H:%M:%S.%gZ') FROM f""",
    "mapillary": """SELECT MAPLatitude: lat, MAPLongitude: lon, MAPAltitude: alt,
                    MAPCaptureTime: strftime(make_timestamp(captured_at * 1000), '%Y_%m_%d_%H_%M_%S_%g'),
                    MAPCompassHeading: {'TrueHeading': heading, 'MagneticHeading': round((heading + 347.2) % 360, 1)},
                    MAPSequenceUUID: sequence_id, MAPDeviceMake: device_make, MAPDeviceModel: device_model,
                    MAPGPSAccuracyMeters: eph, MAPOrientation: 1, filename: image_uri, md5sum: image_md5,
                    filesize: bytes FROM f""",
}


def _copy_json(con, form: str, slot: int, path: str) -> int:
    """Write the frames of one upload slot as JSON Lines in `form`; returns rows."""
    con.execute(f"COPY (WITH f AS (SELECT * FROM t WHERE slot = {slot}) {_SQL[form]} ORDER BY f.ord) "
                f"TO '{path}' (FORMAT JSON, COMPRESSION 'none')")
    return con.execute(f"SELECT count(*) FROM t WHERE slot = {slot}").fetchone()[0]


def _finish(path: str, rng, malformed: list[bytes], gz: bool) -> None:
    """Insert malformed lines (and one blank line) at random line starts; gzip if asked."""
    data = open(path, "rb").read()
    if malformed:
        ins = list(malformed) + [b""]
        at = []
        for p in rng.integers(0, max(1, len(data)), len(ins)):
            j = data.find(b"\n", int(p))
            at.append(len(data) if j < 0 else j + 1)
        pieces, last = [], 0
        for off, i in sorted(zip(at, range(len(ins)))):
            pieces += [data[last:off], ins[i] + b"\n"]
            last = off
        data = b"".join(pieces) + data[last:]
    if gz:
        data = gzip.compress(data, compresslevel=6 if len(data) < (64 << 20) else 1, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


def generate(out: str, rows: int = 3000, seed: int = 7, files: int = 3) -> dict:
    """Write frames, a Mapillary file and devices.csv to `out`; returns counts.
    `rows` ≈ frames; `files` ≥ 2 dashcam frame files (the first gzipped)."""
    import duckdb
    if files < 2:
        raise ValueError("files must be ≥ 2")
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    c, fleet = _simulate(rng, rows)
    n = len(c["k"])
    reps = max(1, rows // 20_000)
    coord = _inject(rng, c, fleet, reps)
    city = np.array([d["city"] for d in fleet])[c["device"]]
    lat0 = np.array([x[1] for x in CITIES])[city]
    lon0 = np.array([x[2] for x in CITIES])[city]
    lat = lat0 + c["north"] / M_PER_DEG
    lon = lon0 + c["east"] / (M_PER_DEG * np.cos(np.radians(lat0)))
    lon[coord["range"]] += 360.0                  # a longitude wrap bug
    lat[coord["null"]] = 0.0                      # no fix: (0, 0)
    lon[coord["null"]] = 0.0
    kind = np.array([d["kind"] for d in fleet])[c["device"]]
    mapy = kind == "mapillary"
    dash = kind == "dashcam"

    # Identity and strings (built by DuckDB: fast and vectorized).
    dev = pa.table({"di": np.arange(len(fleet), dtype=np.int32),
                    "dev": [("hm-" if d["kind"] == "hivemapper" else "cam-") + d["id"] for d in fleet],
                    "make": [d["make"] for d in fleet], "model": [d["model"] for d in fleet]})
    frames = pa.table({
        "di": c["device"], "drive": c["drive"], "k": c["k"], "image": c["image"],
        "captured_at": c["captured"], "received_at": c["received"],
        "lat": np.round(lat, 7), "lon": np.round(lon, 7), "alt": c["alt"], "heading": c["heading"],
        "speed": c["speed"], "hdop": pa.array(c["hdop"]), "gdop": pa.array(c["gdop"], mask=dash),
        "eph": pa.array(c["eph"], mask=dash), "satellites": c["satellites"].astype(np.int32), "fix": c["fix"],
        "bytes": c["bytes"], "mapy": mapy, "dash": dash, "row": np.arange(n, dtype=np.int64),
        "serial": np.arange(n, dtype=np.int64) - np.searchsorted(c["device"], c["device"]),
    })
    n_drives = int(c["drive"].max()) + 1
    raw = np.frombuffer(rng.bytes(16 * n_drives), np.uint8).reshape(n_drives, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40      # a version-4 UUID per drive (camera sequence)
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexd = [r.tobytes().hex() for r in raw]
    seqs = pa.table({"drive": np.arange(n_drives, dtype=np.int32),
                     "seq": [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in hexd]})
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("dev", dev)
    con.register("fr", frames)
    con.register("seqs", seqs)
    salt = f"hexsieve-{seed}-"
    t = con.sql(f"""
        SELECT fr.*, dev.dev AS device_id, dev.make AS device_make, dev.model AS device_model,
          CASE WHEN mapy THEN printf('G%07d.JPG', serial)
               WHEN dash THEN printf('%s_%06d.jpg', dev.dev, serial)
               ELSE printf('%s-%07d', dev.dev, serial) END AS frame_id,
          CASE WHEN mapy OR dash THEN seqs.seq END AS sequence_id,
          CASE WHEN mapy THEN NULL
               WHEN dash THEN printf('sd://DCIM/%s/%06d.jpg', dev.dev, serial)
               ELSE printf('s3://hivemapper-frames/%s/%d.jpg', dev.dev, captured_at) END AS image_uri,
          CASE WHEN mapy THEN NULL ELSE sha256('{salt}' || image) END AS image_sha256,
          CASE WHEN mapy THEN md5('{salt}' || image) END AS image_md5
        FROM fr JOIN dev USING (di) JOIN seqs USING (drive) ORDER BY row""").to_arrow_table()
    con.close()
    # Mapillary: no device id (derived from make/model/sequence), the file name is the image.
    t = t.set_column(t.schema.get_field_index("image_uri"), "image_uri",
                     pa.array(np.where(mapy, t.column("frame_id").to_numpy(zero_copy_only=False),
                                       t.column("image_uri").to_numpy(zero_copy_only=False)), pa.string()))

    # Upload slices: boundaries at received_at quantiles of dashcam frames, so
    # drives under way at a boundary land in two files. Within a file, frames
    # are in arrival order.
    cam = np.nonzero(~mapy)[0]
    recv = c["received"][cam]
    order = np.argsort(recv, kind="stable")
    bounds = recv[order[(np.arange(1, files) * len(cam)) // files]]
    slot = np.full(n, files, np.int32)                     # Mapillary: its own file
    slot[cam] = np.searchsorted(bounds, recv, side="right")
    ord_ = np.arange(n, dtype=np.int64)
    ord_[cam[order]] = np.arange(len(cam))
    t = t.append_column("slot", pa.array(slot)).append_column("ord", pa.array(ord_))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("t", t)
    written = {}
    for f in range(files + 1):
        form = "mapillary" if f == files else ("hivemapper" if f == 0 else "native")
        name = "mapillary-0000.jsonl" if f == files else f"frames-{f:04d}.jsonl" + (".gz" if f == 0 else "")
        mal = MALFORMED[form] if f <= 1 or f == files else []
        path = os.path.join(out, name)
        rows_f = _copy_json(con, form, f, path)
        _finish(path, rng, mal, gz=f == 0)
        written[name] = rows_f + len(mal)
    con.close()
    # Device registry: Hivemapper cameras trigger by distance (one left unregistered), dashcams by time.
    with open(os.path.join(out, "devices.csv"), "w") as fh:
        fh.write("device_id,capture_mode,frame_spacing_m\n")
        hms = [d for d in fleet if d["kind"] == "hivemapper"]
        for d in hms[:-1]:
            fh.write(f"hm-{d['id']},distance,{d['param']}\n")
        for d in fleet:
            if d["kind"] == "dashcam":
                fh.write(f"cam-{d['id']},time,\n")
    # Drives under way at an upload boundary are split across two files.
    drv = c["drive"][cam]                                   # non-decreasing: drives were generated in order
    starts = np.flatnonzero(np.diff(drv, prepend=-1))
    split = int(np.sum(np.minimum.reduceat(slot[cam], starts) != np.maximum.reduceat(slot[cam], starts)))
    return {"frames": n, "files": written, "devices": int(sum(d["kind"] != "mapillary" for d in fleet)),
            "mapillary_sequences": int(len(np.unique(c["drive"][mapy]))),
            "malformed": sum(len(v) for v in MALFORMED.values()), "split_drives": split}
