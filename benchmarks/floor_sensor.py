"""The "floor" for the sensor pipeline: the least work that still reads the
same files, adds one H3 cell per row (the station's claimed res-7 cell) and
writes Parquet — pyarrow only, no Beam, no validation. Malformed lines are
dropped, not quarantined."""
import argparse
import glob
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from floor_io import each, read_all, read_json_lenient
from transforms import h3util

SCHEMA = pa.schema([("station_id", pa.string()), ("model", pa.string()), ("timestamp", pa.float64()),
                    ("utc_datetime", pa.string()), ("temperature", pa.float64()), ("humidity", pa.float64()),
                    ("pressure", pa.float64()), ("wind_speed", pa.float64()), ("wind_direction", pa.float64()),
                    ("illuminance", pa.float64()), ("precipitation_accumulated", pa.float64()),
                    ("lat", pa.float64()), ("lon", pa.float64()), ("gnss_accuracy_m", pa.float64())])


def _read(uri: str) -> pa.Table:
    if uri.endswith(".parquet"):
        return pq.read_table(uri)
    opts = pajson.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
    return read_json_lenient(read_all(uri), each(lambda r: isinstance(r.get("station_id"), str) and
                                                  not isinstance(r.get("temperature"), str)), opts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", required=True)
    ap.add_argument("--stations", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    reg = pacsv.read_csv(a.stations, convert_options=pacsv.ConvertOptions(column_types={"claimed_cell": pa.string()}))
    cells, _ = h3util.parse_cells(reg.column("claimed_cell"))
    keys = reg.column("station_id").combine_chunks()
    rows = 0
    for i, f in enumerate(sorted(glob.glob(a.readings))):
        t = _read(f)
        idx = pc.index_in(t.column("station_id"), value_set=keys)
        cell = cells[pc.fill_null(idx, 0).to_numpy(zero_copy_only=False)]
        t = t.append_column("claimed_cell", pa.array(cell, pa.uint64(), mask=pc.is_null(idx).to_numpy(zero_copy_only=False)))
        pq.write_table(t, os.path.join(a.out, f"part-{i:04d}.parquet"), compression="zstd")
        rows += t.num_rows
    print(rows)


if __name__ == "__main__":
    main()
