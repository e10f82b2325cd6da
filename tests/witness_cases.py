"""Hand-built witness scenarios: a tiny registry around London and helpers to
run the real verification functions on a few reports."""
from __future__ import annotations

import math

import h3
import pyarrow as pa

from schemas.provenance import SOURCE_FIELDS
from schemas.witness import RAW_BEACON, RAW_WITNESS
from transforms.witness.registry import load_denylist, load_entropy, load_registry
from transforms.witness.rules import BEACON_RULES, WITNESS_RULES
from transforms.witness.verify import verify_beacons, verify_witnesses

LAT, LNG = 51.5072, -0.1276
T0 = 1_795_000_000_000  # ms
NOW = T0 + 3_600_000
PAYLOAD = "AAECAwQFBgcICQoLDA0ODxAREhM="


def offset(lat, lng, east_m=0.0, north_m=0.0):
    return lat + north_m / 111_320, lng + east_m / (111_320 * math.cos(math.radians(lat)))


def cell(east_m=0.0, north_m=0.0, res=12):
    y, x = offset(LAT, LNG, east_m, north_m)
    return h3.latlng_to_cell(y, x, res)


HOTSPOTS = {
    "A": dict(cell=cell(), gain=80, region="EU868", full="true"),
    "B": dict(cell=cell(east_m=5000), gain=40, region="EU868", full="true"),
    "C": dict(cell=cell(north_m=8000), gain=40, region="EU868", full="true"),
    "NEAR": dict(cell=cell(east_m=15), gain=40, region="EU868", full="true"),
    "FAR": dict(cell=cell(north_m=150_000), gain=40, region="EU868", full="true"),
    "DATAONLY": dict(cell=cell(east_m=-6000), gain=40, region="EU868", full="false"),
    "US": dict(cell=cell(north_m=-6000), gain=40, region="US915", full="true"),
    "UNASSERTED": dict(cell="", gain=40, region="EU868", full="true"),
    "DENIED": dict(cell=cell(east_m=7000), gain=40, region="EU868", full="true"),
    "EDGE": dict(cell=cell(east_m=-7000), gain=40, region="EU868", full="true"),
}


def key(name: str) -> str:
    return f"112{name}"


def write_registry(tmp_path, hotspots=HOTSPOTS) -> str:
    p = tmp_path / "registry.csv"
    lines = ["pub_key,location,gain,elevation,region,is_full_hotspot"]
    for n, h in hotspots.items():
        lines.append(f"{key(n)},{h['cell']},{h['gain']},10,{h['region']},{h['full']}")
    p.write_text("\n".join(lines) + "\n")
    return str(p)


DENY = [(key("DENIED"), ""), (key("A"), key("EDGE"))]


def write_deny(tmp_path, rows=DENY) -> str:
    p = tmp_path / "deny.csv"
    p.write_text("pub_key,witness_key\n" + "".join(f"{k},{w}\n" for k, w in rows))
    return str(p)


def beacon(**kw) -> dict:
    b = dict(pub_key=key("A"), local_entropy="AQID", remote_entropy="ENTROPY0", data=PAYLOAD,
             frequency=867_100_000, channel=1, datarate="SF9BW125", tx_power=14,
             timestamp=(T0 - 100) * 1_000_000, tmst=1, signature="c2ln", received_timestamp=T0)
    b.update(kw)
    return b


def witness(**kw) -> dict:
    w = dict(pub_key=key("B"), data=PAYLOAD, timestamp=(T0 + 150) * 1_000_000, tmst=2, signal=-1200,
             snr=50, frequency=867_100_000, datarate="SF9BW125", signature="c2ln",
             received_timestamp=T0 + 200)
    w.update(kw)
    return w


def table(rows: list[dict], schema: pa.Schema, uri: str) -> pa.Table:
    t = pa.Table.from_pylist(rows, schema=pa.schema([f.with_nullable(True) for f in schema]))
    n = t.num_rows
    src = {"source_uri": [uri] * n, "source_record": list(range(1, n + 1)),
           "source_sha256": ["0" * 64] * n, "record_sha256": [f"{uri}:{i}" for i in range(n)]}
    for f in SOURCE_FIELDS:
        t = t.append_column(f.name, pa.array(src[f.name], f.type))
    return t


def run(tmp_path, beacons: list[dict], witnesses: list[dict], entropy_rows=None, overrides=None, hotspots=None,
        deny_rows=None):
    """Verify hand-built reports with the real functions; returns (witness rows, beacon rows) as dicts."""
    registry, _ = load_registry(write_registry(tmp_path, hotspots or HOTSPOTS))
    deny = load_denylist(write_deny(tmp_path, DENY if deny_rows is None else deny_rows))
    entropy = None
    if entropy_rows is not None:
        p = tmp_path / "entropy.csv"
        p.write_text("data,timestamp\n" + "".join(f"{d},{t}\n" for d, t in entropy_rows))
        entropy = load_entropy(str(p))
    cb = BEACON_RULES.resolve((overrides or {}).get("beacon"))
    cw = WITNESS_RULES.resolve((overrides or {}).get("witness"))
    vb = verify_beacons(table(beacons, RAW_BEACON, "b.jsonl"), registry, deny, entropy, cb, NOW)
    wt, bt = verify_witnesses(vb, table(witnesses, RAW_WITNESS, "w.jsonl"), registry, deny, cw, NOW)
    return wt.to_pylist(), bt.to_pylist()
