"""A straightforward per-record Beam pipeline for comparison: json.loads per
line, one dict per record, an H3 cell per record (the GNSS fix's res-7 cell,
else the station's claimed cell), Parquet out. JSON Lines inputs only."""
import argparse
import csv
import json

import apache_beam as beam
import h3
import pyarrow as pa

SCHEMA = pa.schema([("station_id", pa.string()), ("model", pa.string()), ("timestamp", pa.int64()),
                    ("temperature", pa.float64()), ("humidity", pa.float64()), ("pressure", pa.float64()),
                    ("wind_speed", pa.float64()), ("wind_direction", pa.float64()), ("illuminance", pa.float64()),
                    ("precipitation_accumulated", pa.float64()), ("cell", pa.string())])
_VALUES = ("temperature", "humidity", "pressure", "wind_speed", "wind_direction", "illuminance",
           "precipitation_accumulated")


class Parse(beam.DoFn):
    def __init__(self, stations):
        self.stations = stations

    def setup(self):
        with open(self.stations) as f:
            self.cells = {r["station_id"]: r["claimed_cell"] for r in csv.DictReader(f)}

    def process(self, line):
        try:
            r = json.loads(line)
        except ValueError:
            return
        if not isinstance(r, dict) or not isinstance(r.get("station_id"), str):
            return
        try:
            ts = r.get("timestamp")
            if ts is None:
                from datetime import datetime
                ts = datetime.fromisoformat(r["utc_datetime"].replace("Z", "+00:00")).timestamp() * 1000
            elif ts < 1e11:
                ts *= 1000
            if r.get("lat") is not None and r.get("lon") is not None:
                cell = h3.latlng_to_cell(r["lat"], r["lon"], 7)
            else:
                cell = self.cells.get(r["station_id"])
            out = {"station_id": r["station_id"], "model": r.get("model"), "timestamp": int(ts), "cell": cell}
            for k in _VALUES:
                v = r.get(k)
                out[k] = None if v is None else float(v)
            yield out
        except (KeyError, TypeError, ValueError, AttributeError):
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", required=True)
    ap.add_argument("--stations", required=True)
    ap.add_argument("--out", required=True)
    a, beam_args = ap.parse_known_args()
    from apache_beam.options.pipeline_options import PipelineOptions
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        (p | beam.io.ReadFromText(a.readings, coder=beam.coders.BytesCoder())
           | beam.ParDo(Parse(a.stations))
           | beam.io.WriteToParquet(a.out + "/part", SCHEMA, file_name_suffix=".parquet", codec="zstd"))


if __name__ == "__main__":
    main()
