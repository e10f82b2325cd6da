"""The "floor": the least work that still reads the same files as hexsieve
(beacons and witnesses), adds one H3 cell per row and writes Parquet —
pyarrow only, no Beam, no validation. hexsieve's throughput is judged
against this. Prints the number of records written."""
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

WITNESS = pa.schema([("pub_key", pa.string()), ("data", pa.string()), ("timestamp", pa.int64()),
                     ("tmst", pa.int64()), ("signal", pa.int64()), ("snr", pa.int64()),
                     ("frequency", pa.int64()), ("datarate", pa.string()), ("signature", pa.string()),
                     ("received_timestamp", pa.int64())])
_BEACON_FIELDS = [("pub_key", pa.string()), ("local_entropy", pa.string()), ("remote_entropy", pa.string()),
                  ("data", pa.string()), ("frequency", pa.int64()), ("channel", pa.int64()),
                  ("datarate", pa.string()), ("tx_power", pa.int64()), ("timestamp", pa.int64()),
                  ("tmst", pa.int64()), ("signature", pa.string())]
# Beacon files mix the flat form and Helium's nested {received_timestamp, report}.
BEACON = pa.schema(_BEACON_FIELDS + [("received_timestamp", pa.int64()),
                                     ("report", pa.struct(_BEACON_FIELDS))])
_INTS = ("timestamp", "signal", "snr", "frequency", "received_timestamp")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--witnesses", required=True)
    ap.add_argument("--beacons", default=None)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    reg = pacsv.read_csv(a.registry, convert_options=pacsv.ConvertOptions(column_types={"location": pa.string()}))
    cells, _ = h3util.parse_cells(reg.column("location"))
    keys = reg.column("pub_key").combine_chunks()
    rows = 0
    jobs = [("beacon", f) for f in sorted(glob.glob(a.beacons))] if a.beacons else []
    jobs += [("witness", f) for f in sorted(glob.glob(a.witnesses))]
    for i, (kind, f) in enumerate(jobs):
        data = read_all(f)
        t = _read_lenient(data, WITNESS) if kind == "witness" else _flatten(_read_lenient(data, BEACON))
        idx = pc.fill_null(pc.index_in(t.column("pub_key"), value_set=keys), 0).to_numpy(zero_copy_only=False)
        t = t.append_column("cell", pa.array(h3util.parent(cells[idx], 11), pa.uint64()))
        pq.write_table(t, os.path.join(a.out, f"{kind}-{i:04d}.parquet"), compression="zstd")
        rows += t.num_rows
    print(rows)


def _flatten(t: pa.Table) -> pa.Table:
    """Nested beacon rows take their fields from `report`."""
    rep = t.column("report")
    cols = {name: pc.coalesce(t.column(name), pc.struct_field(rep, name)) for name, _ in _BEACON_FIELDS}
    cols["received_timestamp"] = t.column("received_timestamp")
    return pa.table(cols)


def _read_lenient(data: bytes, schema: pa.Schema) -> pa.Table:
    ints = [k for k in _INTS if k in schema.names and k != "received_timestamp"]

    def ok(r: dict) -> bool:
        body = r.get("report") if isinstance(r.get("report"), dict) else r
        return isinstance(body.get("pub_key"), str) and isinstance(r.get("received_timestamp"), int) and \
            all(isinstance(body.get(k), int) for k in ints)
    opts = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    return read_json_lenient(data, each(ok), opts)


if __name__ == "__main__":
    main()
