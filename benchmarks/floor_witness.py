"""The "floor": the least work that still reads the same files, adds one H3
cell per row and writes Parquet — pyarrow only, no Beam, no validation.
hexsieve's throughput is judged against this."""
import argparse
import glob
import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from apache_beam.io.filesystems import FileSystems  # same I/O layer as hexsieve

from transforms import h3util


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--witnesses", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    reg = pacsv.read_csv(a.registry, convert_options=pacsv.ConvertOptions(column_types={"location": pa.string()}))
    cells, _ = h3util.parse_cells(reg.column("location"))
    keys = reg.column("pub_key").combine_chunks()
    rows = 0
    for i, f in enumerate(sorted(glob.glob(a.witnesses))):
        with FileSystems.open(f) as fh:
            data = b"".join(iter(lambda: fh.read(16 << 20), b""))
        t = _read_lenient(data)
        idx = pc.fill_null(pc.index_in(t.column("pub_key"), value_set=keys), 0).to_numpy(zero_copy_only=False)
        t = t.append_column("witness_cell", pa.array(h3util.parent(cells[idx], 11), pa.uint64()))
        pq.write_table(t, os.path.join(a.out, f"part-{i:04d}.parquet"), compression="zstd")
        rows += t.num_rows
    print(rows)


SCHEMA = pa.schema([("pub_key", pa.string()), ("data", pa.string()), ("timestamp", pa.int64()),
                    ("tmst", pa.int64()), ("signal", pa.int64()), ("snr", pa.int64()),
                    ("frequency", pa.int64()), ("datarate", pa.string()), ("signature", pa.string()),
                    ("received_timestamp", pa.int64())])
_INTS = ("timestamp", "signal", "snr", "frequency", "received_timestamp")


def _read_lenient(data: bytes) -> pa.Table:
    """The floor must not crash on the few malformed lines some files contain:
    it drops them (no quarantine, no accounting) and parses the rest at once."""
    opts = pajson.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
    try:
        return pajson.read_json(io.BytesIO(data), parse_options=opts)
    except pa.ArrowInvalid:
        import json
        good = []
        for line in data.split(b"\n"):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and isinstance(r.get("pub_key"), str) and \
                    all(isinstance(r.get(k), int) for k in _INTS):
                good.append(line)
        return pajson.read_json(io.BytesIO(b"\n".join(good)), parse_options=opts)


if __name__ == "__main__":
    main()
