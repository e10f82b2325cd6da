"""Reading packets from files (time normalisation) and loading the station registry."""
import json

import h3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.sensor_cases import CLAIM, LAT, LON
from transforms.fileio import InputError
from transforms.parse import read_file
from transforms.sensor.source import READING, load_station_registry, text_to_ms

T = 1_773_100_800_000  # 2026-03-10T00:00:00Z


def _read(path):
    out = {"records": [], "quarantine": []}
    for kind, obj in read_file(str(path), READING):
        if kind in out:
            out[kind].append(obj)
    rec = pa.concat_tables(out["records"]) if out["records"] else None
    q = pa.concat_tables(out["quarantine"]) if out["quarantine"] else None
    return rec, q


def test_jsonl_times_in_every_form(tmp_path):
    lines = [
        {"station_id": "a", "timestamp": T},                          # epoch ms
        {"station_id": "a", "timestamp": T / 1000},                   # epoch s
        {"station_id": "a", "utc_datetime": "2026-03-10T00:00:00Z"},
        {"station_id": "a", "utc_datetime": "2026-03-10T02:00:00.250+02:00"},
        {"station_id": "a", "utc_datetime": "2026-03-10 00:00:00"},   # no offset → UTC
        {"station_id": "a", "utc_datetime": str(T // 1000)},          # numeric text
        {"station_id": "a", "utc_datetime": "yesterday"},
        {"station_id": "a", "utc_datetime": "2026-13-10T00:00:00Z"},
        {"station_id": "a"},
        {"station_id": "a", "timestamp": T, "model": " ws2000 ", "lng": LON, "latitude": LAT},
    ]
    p = tmp_path / "r.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rec, q = _read(p)
    assert rec.column("timestamp").to_pylist() == [T, T, T, T + 250, T, T, T]
    assert rec.column("source_record").to_pylist() == [1, 2, 3, 4, 5, 6, 10]
    last = rec.to_pylist()[-1]
    assert last["model"] == "WS2000" and last["lon"] == LON and last["lat"] == LAT
    assert q.column("source_record").to_pylist() == [7, 8, 9]
    errors = q.column("error").to_pylist()
    assert "'yesterday' is not ISO 8601" in errors[0]
    assert "neither timestamp nor utc_datetime" in errors[2]


def test_parquet_epoch_seconds(tmp_path):
    p = tmp_path / "r.parquet"
    pq.write_table(pa.table({"station_id": ["a", "b"], "timestamp": [T // 1000, T],
                             "temperature": [1.5, None]}), p)
    rec, q = _read(p)
    assert q is None
    assert rec.column("timestamp").to_pylist() == [T, T]


def test_text_to_ms_vectorized():
    ms, ok = text_to_ms(pa.array(["2026-03-10", "2026-03-10T00:00Z", None, "2026-03-10T01:00:00-01:00"]))
    assert ok.tolist() == [True, True, False, True]
    assert ms.tolist()[:2] == [T, T] and ms[3] == T + 2 * 3_600_000


def _csv(tmp_path, body):
    p = tmp_path / "stations.csv"
    p.write_text("station_id,model,claimed_cell,claimed_at\n" + body)
    return str(p)


def test_registry_hex_int_and_finer_cells(tmp_path):
    fine = h3.latlng_to_cell(LAT, LON, 9)
    uri = _csv(tmp_path, f"a,WS2000,{CLAIM},2026-01-01T00:00:00Z\n"
                         f"b,ws1000,{int(CLAIM, 16)},1767225600\n"
                         f"c,,{fine},\n"
                         f"a,WS2000,{CLAIM},2026-02-01T00:00:00Z\n")
    reg, problems = load_station_registry(uri)
    rows = {r["station_id"]: r for r in reg.to_pylist()}
    assert set(rows) == {"a", "b", "c"}
    assert rows["a"]["claimed_at"] == 1_769_904_000_000        # the later claim wins
    assert rows["b"]["model"] == "WS1000" and rows["b"]["claimed_at"] == 1_767_225_600_000
    assert rows["c"]["claimed_cell"] == int(CLAIM, 16)         # res-9 → res-7 parent
    assert len(problems) == 2


@pytest.mark.parametrize("body, message", [
    ("a,WS2000,nothex,\n", "row 1 (station 'a'): claimed_cell 'nothex' is not an H3 cell"),
    ("a,WS2000,,\n", "is missing"),
    (f"a,WS2000,{h3.latlng_to_cell(LAT, LON, 5)},\n", "is resolution 5"),
    (f"a,WS3000,{CLAIM},\n", "model 'WS3000' is not one of"),
    (f"a,WS2000,{CLAIM},someday\n", "claimed_at 'someday' is not a time"),
])
def test_registry_errors_name_the_file(tmp_path, body, message):
    uri = _csv(tmp_path, body)
    with pytest.raises(InputError) as e:
        load_station_registry(uri)
    assert uri in str(e.value) and message in str(e.value)


def test_registry_missing_file_and_columns(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_station_registry(str(tmp_path / "nope.csv"))
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({"station_id": "a"}) + "\n")
    with pytest.raises(InputError, match="lacks column"):
        load_station_registry(str(p))
