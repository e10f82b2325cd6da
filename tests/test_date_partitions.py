"""Staged Parquet goes to the hive partition of each row's own UTC event date."""
import glob
import os

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.beam.write import WriteParquet, date_parts

DAY_MS = 86_400_000
D1 = 20_413 * DAY_MS          # 2025-11-21 00:00 UTC
SCHEMA = pa.schema([("id", pa.int64()), ("t_ms", pa.int64()), ("source_uri", pa.string())])


def _table(times):
    return pa.table({"id": list(range(len(times))), "t_ms": times, "source_uri": ["f"] * len(times)},
                    schema=SCHEMA)


def test_one_day_is_one_part_with_every_row():
    assert date_parts(_table([D1, D1 + 1, D1 + DAY_MS - 1]), "t_ms", "ms", None) == [("2025-11-21", None)]


def test_rows_split_by_their_own_day_and_missing_times_go_to_unknown():
    t = _table([D1 + DAY_MS + 5, D1, None, D1 + 3, 10**17])  # 10**17 ms is past the calendar
    parts = dict(date_parts(t, "t_ms", "ms", None))
    assert sorted(parts) == ["2025-11-21", "2025-11-22", "unknown"]
    assert parts["2025-11-21"].nonzero()[0].tolist() == [1, 3]
    assert parts["2025-11-22"].nonzero()[0].tolist() == [0]
    assert parts["unknown"].nonzero()[0].tolist() == [2, 4]


def test_fixed_date_takes_every_row():
    assert date_parts(_table([D1, D1 + DAY_MS]), "t_ms", "ms", "2030-01-01") == [("2030-01-01", None)]


def test_writer_stages_one_file_per_day_holding_that_days_rows(tmp_path):
    w = WriteParquet(str(tmp_path), "t", SCHEMA, {}, date_column="t_ms")
    receipts = list(w.process(("p1", _table([D1 + DAY_MS, D1, D1 + 7]))))
    assert sorted((r["date"], r["rows"]) for r in receipts) == [("2025-11-21", 2), ("2025-11-22", 1)]
    files = sorted(glob.glob(os.path.join(tmp_path, "data", "t", "date=*", "part-p1.parquet")))
    got = {os.path.basename(os.path.dirname(f)): pq.read_table(f).column("id").to_pylist() for f in files}
    assert got == {"date=2025-11-21": [1, 2], "date=2025-11-22": [0]}
