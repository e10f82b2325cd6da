"""Generate Helium-like beacon/witness reports, a gateway registry, a deny
list and an entropy table around real cities, with every reason code present.

Clean reports obey the free-space physics the verifier checks (signal below
the FSPL ceiling, witnesses 0.5–25 km away, frequencies within 100 kHz); a
fixed set of injected faults guarantees at least one row per reason code, and
`--bad-rate` scales faults for benchmarks.
"""
from __future__ import annotations

import base64
import gzip
import json
import math
import os
from datetime import datetime, timezone

import h3
import numpy as np

CITIES = [  # name, lat, lng, region, base frequency Hz
    ("london", 51.5072, -0.1276, "EU868", 867_100_000),
    ("berlin", 52.5200, 13.4050, "EU868", 867_300_000),
    ("austin", 30.2672, -97.7431, "US915", 904_300_000),
]
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)
NOW = "2026-11-21T00:00:00Z"


def _key(rng) -> str:
    return "112" + "".join(rng.choice(list(B58), 48))


def _b64(rng, n=20) -> str:
    return base64.b64encode(rng.bytes(n)).decode()


def make_hotspots(rng, per_city: int) -> list[dict]:
    hs = []
    for ci, (name, lat, lng, region, _) in enumerate(CITIES):
        r = rng.uniform(0, 12_000, per_city)
        th = rng.uniform(0, 2 * math.pi, per_city)
        dlat = r * np.cos(th) / 111_320
        dlng = r * np.sin(th) / (111_320 * math.cos(math.radians(lat)))
        for i in range(per_city):
            y, x = lat + dlat[i], lng + dlng[i]
            hs.append({"pub_key": _key(rng), "location": h3.latlng_to_cell(y, x, 12), "lat": y, "lng": x,
                       "gain": int(rng.choice([12, 30, 40, 58, 80, 90])), "elevation": int(rng.integers(2, 40)),
                       "region": region, "is_full_hotspot": True, "city": ci})
    return hs


def _dist(a, b) -> float:
    p1, p2 = math.radians(a["lat"]), math.radians(b["lat"])
    dp, dl = p2 - p1, math.radians(b["lng"] - a["lng"])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371007.180918475 * math.asin(math.sqrt(h))


def _ceiling(tx, gb, gw, d, f) -> float:
    return tx + gb // 10 + gw // 10 - 20 * math.log10(4 * math.pi * max(d, 1.0) * f / 2.998e8)


def generate(out: str, rows: int = 5000, seed: int = 7, files: int = 4, bad_rate: float = 0.0,
             malformed: int = 8, gzip_beacons: bool = True) -> dict:
    """Write sample inputs to `out`; returns counts. `rows` ≈ witness reports."""
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    # Each hotspot may beacon 4× a day (6-hour buckets): size the fleet to fit.
    per_city = max(40, rows // 60)
    hs = make_hotspots(rng, per_city)
    by_city = [[h for h in hs if h["city"] == c] for c in range(len(CITIES))]
    start_ms = int(DAY.timestamp() * 1000)
    # Entropy every 60 s through the day.
    entropy = [{"data": _b64(rng, 32), "timestamp": start_ms + i * 60_000} for i in range(24 * 60)]
    beacons, witnesses = [], []
    wpb = 6  # witnesses per beacon on average
    n_beacons = max(1, rows // 5)  # ≈ 5 witnesses survive per beacon on average
    used_bucket: set[tuple[str, int]] = set()
    for bi in range(n_beacons):
        c = bi % len(CITIES)
        city = CITIES[c]
        src = by_city[c][int(rng.integers(len(by_city[c])))]
        recv = start_ms + int(rng.integers(0, 86_400_000 - 10_000))
        bucket = (src["pub_key"], recv // 21_600_000)
        if bucket in used_bucket:  # keep clean beacons regular; faults are injected below
            recv = start_ms + (recv - start_ms + 21_600_000) % 86_400_000
            bucket = (src["pub_key"], recv // 21_600_000)
            if bucket in used_bucket:
                continue
        used_bucket.add(bucket)
        freq = city[4] + int(rng.integers(0, 8)) * 200_000
        ent = entropy[(recv - start_ms) // 60_000]
        b = {"pub_key": src["pub_key"], "local_entropy": _b64(rng, 4), "remote_entropy": ent["data"],
             "data": _b64(rng, 20), "frequency": freq, "channel": int(rng.integers(0, 8)), "datarate": "SF9BW125",
             "tx_power": 27 if city[3] == "US915" else 14, "timestamp": (recv - int(rng.integers(20, 900))) * 1_000_000,
             "tmst": int(rng.integers(0, 2**32 - 1)), "signature": _b64(rng, 64), "received_timestamp": recv}
        beacons.append(b)
        k = int(rng.integers(1, 2 * wpb))
        cands = dict.fromkeys(rng.integers(0, len(by_city[c]), size=k * 2).tolist())
        n_w = 0
        for j in cands:
            wh = by_city[c][int(j)]
            if wh is src:
                continue
            d = _dist(src, wh)
            if d < 600 or d > 60_000:
                continue
            ceil = _ceiling(b["tx_power"], src["gain"], wh["gain"], d, freq)
            sig = int(math.floor((ceil - rng.uniform(3, 35)) * 10))
            wr = recv + int(rng.integers(30, 1200))
            witnesses.append({"pub_key": wh["pub_key"], "data": b["data"], "timestamp": (wr - int(rng.integers(10, 500))) * 1_000_000,
                              "tmst": int(rng.integers(0, 2**32 - 1)), "signal": sig, "snr": int(rng.integers(-200, 150)),
                              "frequency": freq + int(rng.integers(-20_000, 20_000)), "datarate": "SF9BW125",
                              "signature": _b64(rng, 64), "received_timestamp": wr})
            n_w += 1
            if n_w >= k:
                break
    deny = _inject(rng, hs, by_city, beacons, witnesses, entropy, bad_rate)
    # Registry: everybody except the unknown keys injected above.
    reg_rows = [h for h in hs if not h.get("unregistered")]
    with open(os.path.join(out, "registry.csv"), "w") as f:
        f.write("pub_key,location,gain,elevation,region,is_full_hotspot\n")
        for h in reg_rows:
            loc = "" if h.get("unasserted") else h["location"]
            f.write(f"{h['pub_key']},{loc},{h['gain']},{h['elevation']},{h['region']},{str(h['is_full_hotspot']).lower()}\n")
    with open(os.path.join(out, "denylist.csv"), "w") as f:
        f.write("pub_key,witness_key\n")
        for a, b in deny:
            f.write(f"{a},{b or ''}\n")
    with open(os.path.join(out, "entropy.jsonl"), "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in entropy)
    beacons.sort(key=lambda r: r["received_timestamp"])
    witnesses.sort(key=lambda r: r["received_timestamp"])
    _write_split(os.path.join(out, "beacons"), beacons, max(1, files // 2), gzip_beacons, rng, malformed // 2, nested=True)
    _write_split(os.path.join(out, "witnesses"), witnesses, files, False, rng, malformed, nested=False)
    return {"beacons": len(beacons), "witnesses": len(witnesses), "hotspots": len(reg_rows),
            "malformed": malformed // 2 + malformed}


def _inject(rng, hs, by_city, beacons, witnesses, entropy, bad_rate) -> list[tuple[str, str | None]]:
    """At least one fault per reason code (more with bad_rate)."""
    reps = max(1, int(bad_rate * len(witnesses) / 20))
    deny: list[tuple[str, str | None]] = []
    for r in range(reps):
        bsel = rng.choice(len(beacons), size=min(12, len(beacons)), replace=False)
        def wit_of(bidx):
            return [w for w in witnesses if w["data"] == beacons[bidx]["data"]]
        # --- beacon faults
        b = beacons[int(bsel[0])]; stranger = {"pub_key": _key(rng), "unregistered": True}
        hs.append(stranger); b["pub_key"] = stranger["pub_key"]                       # gateway_not_found
        src = by_city[0][r % len(by_city[0])]; src["unasserted"] = True
        beacons[int(bsel[1])]["pub_key"] = src["pub_key"]                              # not_asserted
        deny.append((beacons[int(bsel[2])]["pub_key"], None))                           # denied (beaconer)
        dataonly = by_city[1][r % len(by_city[1])]; dataonly["is_full_hotspot"] = False
        beacons[int(bsel[3])]["pub_key"] = dataonly["pub_key"]                          # invalid_capability
        twin = dict(beacons[int(bsel[4])]); twin["data"] = _b64(rng, 20)
        twin["received_timestamp"] += 60_000; twin["timestamp"] += 60_000 * 1_000_000
        beacons.append(twin)                                                            # irregular_interval
        beacons[int(bsel[5])]["remote_entropy"] = _b64(rng, 32)                         # bad_entropy
        e_old = entropy[max(0, (beacons[int(bsel[6])]["received_timestamp"] - entropy[0]["timestamp"]) // 60_000 - 10)]
        beacons[int(bsel[6])]["remote_entropy"] = e_old["data"]                         # entropy_expired
        beacons[int(bsel[7])]["timestamp"] -= 50 * 60_000 * 1_000_000                   # stale
        beacons[int(bsel[8])]["received_timestamp"] += 3 * 86_400_000                  # future_timestamp
        # --- witness faults, on witnesses of clean beacons
        ws = [w for w in witnesses if w["data"] == beacons[int(bsel[9])]["data"]]
        ws = ws or [w for w in witnesses[:50]]
        tpl = ws[0]
        def add(**kw):
            w = dict(tpl); w.update(kw); witnesses.append(w); return w
        add(data="not*base64!")                                                         # invalid_packet
        add(data=_b64(rng, 20))                                                         # beacon_not_found
        add(pub_key=_key(rng))                                                          # gateway_not_found
        un = by_city[2][r % len(by_city[2])]; un["unasserted"] = True
        add(pub_key=un["pub_key"])                                                      # not_asserted
        dk = by_city[2][(r + 1) % len(by_city[2])]; deny.append((dk["pub_key"], None))
        add(pub_key=dk["pub_key"])                                                      # denied
        bk = [x for x in beacons if x["data"] == tpl["data"]][0]["pub_key"]
        ek = by_city[2][(r + 2) % len(by_city[2])]; deny.append((bk, ek["pub_key"]))
        add(pub_key=ek["pub_key"])                                                      # denied_edge
        add(pub_key=bk)                                                                 # self_witness
        add(received_timestamp=tpl["received_timestamp"] + 6_000, timestamp=tpl["timestamp"] + 6_000_000_000)  # too_late
        do = by_city[2][(r + 3) % len(by_city[2])]; do["is_full_hotspot"] = False
        add(pub_key=do["pub_key"])                                                      # invalid_capability
        add(frequency=tpl["frequency"] + 150_000)                                       # invalid_frequency
        odd = by_city[0][(r + 5) % len(by_city[0])]; odd["region"] = "EU433"
        add(pub_key=odd["pub_key"])                                                     # invalid_region
        srcb = [h for h in hs if h["pub_key"] == bk]
        if srcb:
            near = {"pub_key": _key(rng), "lat": srcb[0]["lat"] + 0.0004, "lng": srcb[0]["lng"], "gain": 12,
                    "elevation": 5, "region": srcb[0].get("region"), "is_full_hotspot": True, "city": srcb[0].get("city")}
            near["location"] = h3.latlng_to_cell(near["lat"], near["lng"], 12)
            hs.append(near); add(pub_key=near["pub_key"])                              # below_min_distance
            far = by_city[(srcb[0].get("city", 0) + 1) % len(CITIES)][0]
            faraway = dict(far); faraway["pub_key"] = _key(rng); faraway["region"] = srcb[0].get("region")
            hs.append(faraway); add(pub_key=faraway["pub_key"])                        # max_distance_exceeded
        add(signal=-100)                                                                # bad_rssi (-10 dBm)
        add(received_timestamp=tpl["received_timestamp"] + 5)                           # duplicate
        add(timestamp=tpl["timestamp"] - 50 * 60_000 * 1_000_000)                       # stale
        add(timestamp=tpl["timestamp"] + 3 * 86_400_000 * 1_000_000)                   # future_timestamp
    return deny


MALFORMED = [
    b"this is not json",
    b'{"pub_key": "112abc", "data": ',
    b"[1, 2, 3]",
    b'{"pub_key": "112NoData", "timestamp": 1}',
    b'{"pub_key": "112x", "data": "AAAA", "timestamp": "yesterday", "signal": -900, "snr": 5, "frequency": 867100000, "received_timestamp": 1763596800000}',
    b'{"pub_key": 12345, "data": "AAAA", "timestamp": 1, "signal": -900.5, "snr": 5, "frequency": 1, "received_timestamp": 1}',
    b"\xff\xfe\x00garbage",
    b'{"pub_key": "112y", "data": "AAAA", "timestamp": NaN, "signal": -900, "snr": 5, "frequency": 1, "received_timestamp": 1}',
]


def _write_split(prefix: str, rows: list[dict], files: int, gz: bool, rng, malformed: int, nested: bool) -> None:
    chunks = np.array_split(np.arange(len(rows)), files)
    for i, idx in enumerate(chunks):
        lines = []
        for k in idx.tolist():
            r = rows[k]
            if nested and k % 2 == 0:  # Helium dump form for half the beacons
                rr = dict(r); recv = rr.pop("received_timestamp")
                lines.append(json.dumps({"received_timestamp": recv, "report": rr}).encode())
            else:
                lines.append(json.dumps(r).encode())
        if i == 0:
            for m in range(malformed):
                pos = int(rng.integers(0, len(lines) + 1))
                lines.insert(pos, MALFORMED[m % len(MALFORMED)])
            lines.insert(min(3, len(lines)), b"")
        data = b"\n".join(lines) + b"\n"
        name = f"{prefix}-{i:04d}.jsonl" + (".gz" if gz else "")
        if gz:
            with gzip.open(name, "wb", compresslevel=1) as f:
                f.write(data)
        else:
            with open(name, "wb") as f:
                f.write(data)
