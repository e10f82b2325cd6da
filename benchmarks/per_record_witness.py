"""A straightforward per-record Beam pipeline for comparison: json.loads per
line, one dict per record, an H3 cell per record, Parquet out, over the same
files as hexsieve (beacons and witnesses). This is the design hexsieve
deliberately avoids; the benchmark shows by how much."""
import argparse
import csv
import json

import apache_beam as beam
import h3
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

WITNESS = pa.schema([("pub_key", pa.string()), ("data", pa.string()), ("timestamp", pa.int64()),
                     ("signal", pa.int64()), ("snr", pa.int64()), ("frequency", pa.int64()),
                     ("received_timestamp", pa.int64()), ("cell", pa.string())])
BEACON = pa.schema([("pub_key", pa.string()), ("data", pa.string()), ("timestamp", pa.int64()),
                    ("frequency", pa.int64()), ("tx_power", pa.int64()),
                    ("received_timestamp", pa.int64()), ("cell", pa.string())])


class Parse(beam.DoFn):
    def __init__(self, registry, schema):
        self.registry, self.schema = registry, schema

    def setup(self):
        with open(self.registry) as f:
            self.cells = {r["pub_key"]: r["location"] for r in csv.DictReader(f)}
        self.ints = [n for n in self.schema.names if n not in ("pub_key", "data", "cell")]

    def process(self, line):
        try:
            r = json.loads(line)
        except ValueError:
            return
        if isinstance(r, dict) and isinstance(r.get("report"), dict):  # Helium's nested form
            r = {**r["report"], "received_timestamp": r.get("received_timestamp")}
        if not isinstance(r, dict) or not isinstance(r.get("pub_key"), str) or not isinstance(r.get("data"), str):
            return
        loc = self.cells.get(r["pub_key"])
        try:
            out = {"pub_key": r["pub_key"], "data": r["data"], **{k: int(r[k]) for k in self.ints}}
        except (KeyError, TypeError, ValueError):
            return
        out["cell"] = h3.cell_to_parent(loc, 11) if loc else None
        yield out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--witnesses", required=True)
    ap.add_argument("--beacons", default=None)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--out", required=True)
    a, beam_args = ap.parse_known_args()
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        kinds = [("witness", a.witnesses, WITNESS)] + ([("beacon", a.beacons, BEACON)] if a.beacons else [])
        for kind, pattern, schema in kinds:
            (p | f"Read{kind}" >> beam.io.ReadFromText(pattern, coder=beam.coders.BytesCoder())
               | f"Parse{kind}" >> beam.ParDo(Parse(a.registry, schema))
               | f"Write{kind}" >> beam.io.WriteToParquet(f"{a.out}/{kind}", schema, file_name_suffix=".parquet",
                                                          codec="zstd"))


if __name__ == "__main__":
    main()
