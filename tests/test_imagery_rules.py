"""Imagery rules on small hand-built drives, plus parsing of real-shaped files."""
from __future__ import annotations

import gzip
import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import SCHEMAS
from schemas.imagery import IMAGERY_OUT
from transforms.imagery.rules import ALL_REASONS, FRAME_RULES, SEQUENCE_RULES, Reason, rules_version
from transforms.imagery.source import FRAME, parse_time_ms
from transforms.imagery.verify import VERIFIED_FRAME, verify_frames
from transforms.parse import read_file

R = Reason
NOW = 1_800_000_000_000           # the run's now (ms)
T0 = NOW - 3_600_000              # drives start an hour earlier
LAT0, LON0 = 52.52, 13.40
M_PER_DEG_LAT = 6371007.180918475 * math.pi / 180
CF, CS = FRAME_RULES.resolve(), SEQUENCE_RULES.resolve()


def north(m: float) -> float:
    return m / M_PER_DEG_LAT


def east(m: float, lat: float = LAT0) -> float:
    return m / (M_PER_DEG_LAT * math.cos(math.radians(lat)))


def drive(n: int, dev: str = "cam1", step_m: float = 10.0, dt_ms: int = 1000, t0: int = T0,
          uri: str = "file-a", first_record: int = 1, lat0: float = LAT0, start: int = 0) -> list[dict]:
    """A clean northbound drive: one frame per dt_ms, step_m apart."""
    rows = []
    for i in range(start, start + n):
        rows.append({
            "frame_id": f"{dev}-{i}", "device_id": dev, "sequence_id": None,
            "captured_at": t0 + i * dt_ms, "lat": lat0 + north(i * step_m), "lon": LON0,
            "heading": 0.0, "fix": "3D", "satellites": 10, "hdop": 0.9, "gdop": 1.5, "eph": 2.0,
            "bytes": 400_000, "image_sha256": f"{dev}-sha-{i}", "received_at": NOW - 60_000,
            "source_uri": uri, "source_record": first_record + i - start,
            "source_sha256": f"{uri}-sha", "record_sha256": f"{dev}-rec-{i}",
        })
    return rows


def verify(rows: list[dict] | list[list[dict]], devices: pa.Table | None = None) -> dict[str, dict]:
    if rows and isinstance(rows[0], list):
        tables = [pa.Table.from_pylist(r) for r in rows]
    else:
        tables = pa.Table.from_pylist(rows)
    out = verify_frames(tables, devices, CF, CS, NOW)
    assert out.schema == VERIFIED_FRAME
    return {r["frame_id"]: r for r in out.to_pylist()}


def bad_frames(res: dict[str, dict]) -> dict[str, list[str]]:
    return {k: v["reasons"] for k, v in res.items() if v["reasons"]}


# --- every reason code, each from a small case --------------------------------

def _set(rows, i, **kw):
    rows[i].update(kw)
    return rows


def case_coordinate_range():
    return _set(drive(6), 3, lat=95.0), "cam1-3"


def case_null_island():
    return _set(drive(6), 3, lat=0.0, lon=0.0), "cam1-3"


def case_bad_fix():
    return _set(drive(6), 3, fix="2D"), "cam1-3"


def case_few_satellites():
    return _set(drive(6), 3, satellites=3), "cam1-3"


def case_high_hdop():
    return _set(drive(6), 3, hdop=4.5), "cam1-3"


def case_high_gdop():
    return _set(drive(6), 3, gdop=6.5), "cam1-3"


def case_high_eph():
    return _set(drive(6), 3, eph=12.0), "cam1-3"


def case_future_timestamp():
    rows = drive(6)
    rows[5].update(captured_at=NOW + 3_600_000, received_at=NOW)
    return rows, "cam1-5"


def case_too_old():
    rows = drive(6, t0=NOW - 11 * 86_400_000)
    return rows, "cam1-0"


def case_image_too_small():
    return _set(drive(6), 3, bytes=25 * 1024), "cam1-3"


def case_image_too_large():
    return _set(drive(6), 3, bytes=2 * 1024 * 1024), "cam1-3"


def case_duplicate_frame():
    return _set(drive(6), 4, image_sha256="cam1-sha-1"), "cam1-4"


def case_non_increasing_time():
    return _set(drive(6), 4, captured_at=T0 + 3 * 1000), "cam1-4"


def case_too_fast():
    # 35 m/s cruise; one 45 m step in 1 s: too fast, yet within 2 × the device's spacing.
    rows = drive(8, step_m=35.0)
    for i in range(5, 8):
        rows[i]["lat"] += north(10.0)
    return rows, "cam1-5"


def case_teleport():
    # 10 m spacing; a 25 m sideways jump (27 m, 27 m/s: not too fast) is > 2 × spacing.
    return _set(drive(8), 5, lon=LON0 + east(25.0)), "cam1-5"


def case_zigzag():
    # GNSS flipping between two spots 40 m apart every 2 s: each step looks like
    # the device's normal spacing, but the track goes out and back.
    rows = drive(9, dt_ms=2000)
    for i, r in enumerate(rows):
        r["lat"] = LAT0 + (north(40.0) if i % 2 else 0.0)
    return rows, "cam1-4"


def case_stationary_sequence():
    rows = drive(8, step_m=0.0)
    for i, r in enumerate(rows):
        r["lon"] = LON0 + east(1.0 * (i % 3))
    return rows, "cam1-4"


CASES = {
    R.COORDINATE_RANGE: case_coordinate_range, R.NULL_ISLAND: case_null_island,
    R.BAD_FIX: case_bad_fix, R.FEW_SATELLITES: case_few_satellites, R.HIGH_HDOP: case_high_hdop,
    R.HIGH_GDOP: case_high_gdop, R.HIGH_EPH: case_high_eph,
    R.FUTURE_TIMESTAMP: case_future_timestamp, R.TOO_OLD: case_too_old,
    R.IMAGE_TOO_SMALL: case_image_too_small, R.IMAGE_TOO_LARGE: case_image_too_large,
    R.DUPLICATE_FRAME: case_duplicate_frame, R.NON_INCREASING_TIME: case_non_increasing_time,
    R.TOO_FAST: case_too_fast, R.TELEPORT: case_teleport, R.ZIGZAG: case_zigzag,
    R.STATIONARY_SEQUENCE: case_stationary_sequence,
}


def test_every_reason_has_a_case():
    assert set(CASES) == set(ALL_REASONS)
    assert set(FRAME_RULES.reasons()) | set(SEQUENCE_RULES.reasons()) == set(ALL_REASONS)


@pytest.mark.parametrize("code", sorted(CASES))
def test_reason_is_triggered(code):
    rows, target = CASES[code]()
    res = verify(rows)
    assert code in res[target]["reasons"], bad_frames(res)
    assert res[target]["verdict"] == "invalid"


@pytest.mark.parametrize("code", [R.COORDINATE_RANGE, R.NULL_ISLAND, R.BAD_FIX, R.FEW_SATELLITES,
                                  R.HIGH_HDOP, R.HIGH_GDOP, R.HIGH_EPH, R.IMAGE_TOO_SMALL,
                                  R.IMAGE_TOO_LARGE, R.TELEPORT, R.TOO_FAST])
def test_single_bad_frame_condemns_only_itself(code):
    rows, target = CASES[code]()
    assert list(bad_frames(verify(rows))) == [target]


def test_clean_drive_passes():
    res = verify(drive(30))
    assert bad_frames(res) == {}
    r = res["cam1-10"]
    assert r["verdict"] == "valid" and r["sequence_index"] == 0
    assert r["dt_prev_ms"] == 1000
    assert r["distance_prev_m"] == pytest.approx(10.0, abs=1e-3)
    assert r["speed_prev_mps"] == pytest.approx(10.0, abs=1e-3)
    assert res["cam1-0"]["distance_prev_m"] is None and res["cam1-0"]["dt_prev_ms"] is None


def test_cells():
    import h3
    res = verify(case_coordinate_range()[0])
    r = res["cam1-1"]
    assert r["cell"] == h3.str_to_int(h3.latlng_to_cell(r["lat"], r["lon"], 15))
    assert r["coverage_cell"] == h3.str_to_int(h3.cell_to_parent(h3.int_to_str(r["cell"]), 8))
    assert res["cam1-3"]["cell"] is None and res["cam1-3"]["coverage_cell"] is None


def test_bad_fix_in_the_middle_of_a_clean_drive():
    rows = drive(21)
    rows[10].update(fix="none", satellites=0, lat=LAT0 + north(400.0), lon=LON0 + east(300.0))
    res = verify(rows)
    assert bad_frames(res) == {"cam1-10": ["bad_fix", "few_satellites"]}
    # the next frame is judged against frame 9, the previous one that passed
    assert res["cam1-11"]["distance_prev_m"] == pytest.approx(20.0, abs=1e-3)
    assert res["cam1-11"]["dt_prev_ms"] == 2000
    assert {r["sequence_index"] for r in res.values()} == {0}


def test_outlier_that_passes_frame_checks_condemns_itself_at_most_its_neighbour():
    rows = drive(21)
    rows[10].update(lat=LAT0 + north(100.0 + 2000.0))  # 2 km ahead, then back on track
    bad = bad_frames(verify(rows))
    assert "cam1-10" in bad and set(bad) <= {"cam1-10", "cam1-11"}
    assert set(bad["cam1-10"]) == {R.TOO_FAST, R.TELEPORT}


def test_teleport_is_judged_against_the_devices_own_spacing():
    # A time-lapse camera at 25 m/s shoots 25 m apart: not a teleport of an 8 m-spacing camera.
    assert bad_frames(verify(drive(20, step_m=25.0))) == {}
    # A distance-triggered camera known to the registry is judged from its second step.
    registry = pa.table({"device_id": ["cam1"], "capture_mode": ["distance"], "frame_spacing_m": [8.0]})
    rows = drive(4, step_m=8.0)
    rows[2]["lat"] += north(20.0)  # 28 m, 28 m/s: > 2 × 8 m
    for r in rows[3:]:
        r["lat"] += north(20.0)
    assert bad_frames(verify(rows, registry)) == {"cam1-2": [R.TELEPORT]}
    assert bad_frames(verify(rows)) == {}  # unknown device: no history yet, no verdict


def test_sequence_split_on_time_and_distance_gaps():
    rows = drive(5) + drive(5, t0=T0 + 120_000, start=5)         # > 60 s gap
    rows += drive(3, t0=T0 + 120_000 + 10_000 * 0, start=10, dt_ms=10_000, step_m=5.0)
    for r in rows[10:]:
        r["captured_at"] += 5_000
    rows[10]["lat"] = rows[9]["lat"] + north(150.0)            # 150 m in ~10 s: split, not a jump
    rows[11]["lat"] = rows[10]["lat"] + north(150.0)
    rows[12]["lat"] = rows[11]["lat"] + north(150.0)
    res = verify(rows)
    assert bad_frames(res) == {}
    assert [res[f"cam1-{i}"]["sequence_index"] for i in range(13)] == [0] * 5 + [1] * 5 + [2, 3, 4]


def test_sequence_id_change_starts_a_sequence():
    rows = drive(6)
    for r in rows:
        r["sequence_id"] = "A" if int(r["frame_id"].split("-")[1]) < 3 else "B"
    res = verify(rows)
    assert [res[f"cam1-{i}"]["sequence_index"] for i in range(6)] == [0, 0, 0, 1, 1, 1]


def test_one_device_split_across_two_files_in_any_order():
    rows = drive(20)
    a = [dict(r, source_uri="file-a") for r in rows[:10]]
    b = [dict(r, source_uri="file-b", source_record=i + 1) for i, r in enumerate(rows[10:])]
    b[7]["image_sha256"] = a[2]["image_sha256"]          # duplicate image across files
    other = drive(5, dev="cam2", uri="file-b", first_record=100)
    res = verify([list(reversed(b)) + other, a[::-1]])
    assert bad_frames(res) == {"cam1-17": [R.DUPLICATE_FRAME]}
    assert res["cam1-10"]["dt_prev_ms"] == 1000 and res["cam1-10"]["source_uri"] == "file-b"
    assert {r["sequence_index"] for r in res.values()} == {0}
    out = verify_frames([pa.Table.from_pylist(a), pa.Table.from_pylist(b)], None, CF, CS, NOW)
    assert out.column("frame_id").to_pylist() == [f"cam1-{i}" for i in range(20)]


def test_duplicate_position_and_heading():
    rows = drive(6)
    rows[4].update(lat=rows[3]["lat"] + north(0.05), heading=3.0)
    rows[5].update(lat=rows[4]["lat"] + north(10.0))
    assert bad_frames(verify(rows)) == {"cam1-4": [R.DUPLICATE_FRAME]}
    rows[4]["heading"] = 40.0  # turned on the spot: a new view, not a duplicate
    assert bad_frames(verify(rows)) == {}


def test_frame_captured_after_receipt_is_future():
    rows = drive(6)
    rows[2]["received_at"] = rows[2]["captured_at"] - 120_000
    assert bad_frames(verify(rows)) == {"cam1-2": [R.FUTURE_TIMESTAMP]}


def test_constants_override_changes_version():
    cf = FRAME_RULES.resolve({"max_hdop": 0.5})
    assert cf.version.startswith("imagery-1.0.0+")
    assert rules_version(cf, CS) == f"frame={cf.version};sequence={CS.version}"
    assert rules_version(CF, CS) == "imagery-1.0.0"
    out = verify_frames(pa.Table.from_pylist(drive(3)), None, cf, CS, NOW)
    assert all(R.HIGH_HDOP in r for r in out.column("reasons").to_pylist())


def test_empty_input():
    out = verify_frames(pa.Table.from_pylist(drive(1)).slice(0, 0), None, CF, CS, NOW)
    assert out.num_rows == 0 and out.schema == VERIFIED_FRAME


def test_schemas_registered():
    assert SCHEMAS["imagery"] is IMAGERY_OUT
    assert {"raw_frame", "device_registry"} <= set(SCHEMAS)
    assert IMAGERY_OUT.field("cell").type == pa.uint64()
    assert IMAGERY_OUT.field("captured_at").metadata[b"unit"] == b"ms since Unix epoch"


# --- parsing ----------------------------------------------------------------

ISO = "2026-11-20T10:15:30.123Z"
EPOCH = 1795169730123  # the same instant


def test_iso_and_epoch_captured_at_agree():
    ms, ok, present = parse_time_ms(pa.array([ISO, str(EPOCH), "2026_11_20_10_15_30_123",
                                              "2026-11-20T11:15:30.123+01:00", "2026-11-20 10:15:30.123",
                                              "yesterday", "2026-02-30T00:00:00Z", None]))
    assert ms[:5].tolist() == [EPOCH] * 5
    assert ok.tolist() == [True] * 5 + [False, False, False]
    assert present.tolist() == [True] * 7 + [False]


def _mapillary(i: int, **kw) -> dict:
    rec = {
        "MAPLatitude": LAT0 + north(10.0 * i), "MAPLongitude": LON0,
        "MAPCaptureTime": f"2026_11_20_10_15_{30 + i:02d}_123",
        "MAPAltitude": 41.5, "MAPCompassHeading": {"TrueHeading": 350.0 + i, "MagneticHeading": 347.0},
        "MAPSequenceUUID": "seq-1", "MAPDeviceMake": "GoPro", "MAPDeviceModel": "HERO9",
        "MAPGPSAccuracyMeters": 3.5, "md5sum": f"md5-{i}", "filesize": 512_000,
        "filename": f"IMG_{i:04d}.jpg", "MAPOrientation": 1,
    }
    rec.update(kw)
    return rec


def _read(path) -> tuple[pa.Table | None, pa.Table | None, object]:
    tables, quarantine, stats = [], None, None
    for kind, obj in read_file(str(path), FRAME):
        if kind == "records":
            tables.append(obj)
        elif kind == "quarantine":
            quarantine = obj
        else:
            stats = obj
    return (pa.concat_tables(tables) if tables else None), quarantine, stats


def test_mapillary_records_parse(tmp_path):
    recs = [_mapillary(i) for i in range(4)]
    recs[1]["MAPCompassHeading"] = 725.0                    # a bare number, wrapped to 5°
    recs[2]["MAPCaptureTime"] = "2026-11-20T10:15:32.123Z"  # ISO instead of Mapillary's format
    recs[3]["MAPCompassHeading"] = {"MagneticHeading": 12.0}
    path = tmp_path / "mapillary.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    t, q, stats = _read(path)
    assert q is None and stats.parsed == 4
    rows = t.to_pylist()
    assert [r["captured_at"] for r in rows] == [EPOCH + i * 1000 for i in range(4)]
    assert [r["heading"] for r in rows] == [350.0, 5.0, 352.0, 12.0]
    r = rows[0]
    assert r["lat"] == pytest.approx(LAT0) and r["lon"] == LON0 and r["alt"] == 41.5
    assert r["sequence_id"] == "seq-1" and r["device_make"] == "GoPro" and r["device_model"] == "HERO9"
    assert r["device_id"] == "GoPro/HERO9/seq-1" and r["frame_id"] == "IMG_0000.jpg"
    assert r["eph"] == 3.5 and r["image_md5"] == "md5-0" and r["bytes"] == 512_000
    assert r["source_uri"] == str(path) and r["source_record"] == 1 and len(r["record_sha256"]) == 64
    out = verify_frames(t, None, CF, CS, EPOCH + 3_600_000)
    assert out.column("verdict").to_pylist() == ["valid"] * 4


def test_captured_at_as_number_or_text_in_one_file(tmp_path):
    base = {"device_id": "cam9", "lat": LAT0, "lon": LON0, "fix": 3, "bytes": 100_000}
    lines = [dict(base, frame_id="a", captured_at=EPOCH),
             dict(base, frame_id="b", captured_at=ISO),
             dict(base, frame_id="c", captured_at=float(EPOCH)),
             dict(base, frame_id="d", t=EPOCH, fix="no fix"),
             dict(base, frame_id="e", captured_at="not a time"),
             dict(base, frame_id="f")]
    path = tmp_path / "frames.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in lines) + "\n")
    t, q, stats = _read(path)
    got = {r["frame_id"]: (r["captured_at"], r["fix"]) for r in t.to_pylist()}
    assert got == {"a": (EPOCH, "3D"), "b": (EPOCH, "3D"), "c": (EPOCH, "3D"), "d": (EPOCH, "none")}
    assert sorted(zip(q.column("source_record").to_pylist(), q.column("error_code").to_pylist())) == \
        [(5, "bad_value"), (6, "missing_field")]
    assert stats.records == 6 and stats.parsed == 4 and stats.quarantined == 2


def test_all_numeric_captured_at_block(tmp_path):
    # every line a number: parsed by the alternative type in one pass
    path = tmp_path / "epoch.jsonl"
    path.write_text("\n".join(json.dumps({"frame_id": str(i), "device_id": "c", "lat": 1.0, "lon": 2.0,
                                          "captured_at": EPOCH + i}) for i in range(50)) + "\n")
    t, q, _ = _read(path)
    assert q is None and t.column("captured_at").to_pylist() == [EPOCH + i for i in range(50)]


def test_mapillary_parquet(tmp_path):
    recs = [_mapillary(i) for i in range(3)]
    path = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(recs), path)
    t, q, _ = _read(path)
    assert q is None
    assert t.column("heading").to_pylist() == [350.0, 351.0, 352.0]
    assert t.column("captured_at").to_pylist() == [EPOCH + i * 1000 for i in range(3)]
    path2 = tmp_path / "e.parquet"
    pq.write_table(pa.table({"frame_id": ["x"], "device_id": ["c"], "lat": [1.0], "lon": [2.0],
                             "captured_at": pa.array([EPOCH], pa.int64()), "heading": [-90.0]}), path2)
    t2, q2, _ = _read(path2)
    assert q2 is None and t2.column("captured_at").to_pylist() == [EPOCH]
    assert t2.column("heading").to_pylist() == [270.0]


def test_mapillary_record_without_identity_is_quarantined(tmp_path):
    rec = _mapillary(0)
    del rec["MAPSequenceUUID"]
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    t, q, _ = _read(path)
    assert t is None and q.column("error_code").to_pylist() == ["bad_value"]
    assert "device_id" in q.column("error").to_pylist()[0]
