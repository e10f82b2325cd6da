"""A straightforward per-record Beam pipeline for comparison: json.loads per
line, one dict per record, an H3 cell per record, Parquet out. This is the
design hexsieve deliberately avoids; the benchmark shows by how much."""
import argparse
import csv
import json

import apache_beam as beam
import h3
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

SCHEMA = pa.schema([("pub_key", pa.string()), ("data", pa.string()), ("timestamp", pa.int64()),
                    ("signal", pa.int64()), ("snr", pa.int64()), ("frequency", pa.int64()),
                    ("received_timestamp", pa.int64()), ("witness_cell", pa.string())])


class Parse(beam.DoFn):
    def __init__(self, registry):
        self.registry = registry

    def setup(self):
        with open(self.registry) as f:
            self.cells = {r["pub_key"]: r["location"] for r in csv.DictReader(f)}

    def process(self, line):
        try:
            r = json.loads(line)
        except ValueError:
            return
        if not isinstance(r, dict) or "signal" not in r or not isinstance(r.get("pub_key"), str) \
                or not isinstance(r.get("data"), str):
            return
        loc = self.cells.get(r.get("pub_key"))
        cell = h3.cell_to_parent(loc, 11) if loc else None
        try:
            yield {"pub_key": r["pub_key"], "data": r["data"], "timestamp": int(r["timestamp"]),
                   "signal": int(r["signal"]), "snr": int(r["snr"]), "frequency": int(r["frequency"]),
                   "received_timestamp": int(r["received_timestamp"]), "witness_cell": cell}
        except (KeyError, TypeError, ValueError):
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--witnesses", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--out", required=True)
    a, beam_args = ap.parse_known_args()
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        (p | beam.io.ReadFromText(a.witnesses, coder=beam.coders.BytesCoder())
           | beam.ParDo(Parse(a.registry))
           | beam.io.WriteToParquet(a.out + "/part", SCHEMA, file_name_suffix=".parquet", codec="zstd"))


if __name__ == "__main__":
    main()
