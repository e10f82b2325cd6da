"""A straightforward per-record Beam pipeline for comparison: json.loads per
line, one dict per record (Mapillary / Hivemapper names mapped), an H3 cell
per record, Parquet out. This is the design hexsieve deliberately avoids; the
benchmark shows by how much."""
import argparse
import json

import apache_beam as beam
import h3
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

SCHEMA = pa.schema([("frame_id", pa.string()), ("device_id", pa.string()), ("captured_at", pa.string()),
                    ("lat", pa.float64()), ("lon", pa.float64()), ("heading", pa.float64()),
                    ("bytes", pa.int64()), ("cell", pa.string())])
ALIASES = {"MAPLatitude": "lat", "MAPLongitude": "lon", "lng": "lon", "MAPCaptureTime": "captured_at",
           "t": "captured_at", "MAPCompassHeading": "heading", "deviceId": "device_id",
           "MAPPhotoUUID": "frame_id", "filename": "frame_id", "filesize": "bytes", "MAPSequenceUUID": "sequence_id"}


class Parse(beam.DoFn):
    def process(self, line):
        try:
            r = json.loads(line)
        except ValueError:
            return
        if not isinstance(r, dict):
            return
        rec = {ALIASES.get(k, k): v for k, v in r.items()}
        h = rec.get("heading")
        if isinstance(h, dict):
            h = h.get("TrueHeading", h.get("MagneticHeading"))
        lat, lon = rec.get("lat"), rec.get("lon")
        if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
            return
        try:
            cell = h3.latlng_to_cell(lat, lon, 15)
        except Exception:
            cell = None
        try:
            yield {"frame_id": str(rec.get("frame_id")), "device_id": str(rec.get("device_id") or rec.get("sequence_id")),
                   "captured_at": str(rec.get("captured_at")), "lat": float(lat), "lon": float(lon),
                   "heading": None if h is None else float(h) % 360.0,
                   "bytes": None if rec.get("bytes") is None else int(rec["bytes"]), "cell": cell}
        except (TypeError, ValueError):
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", required=True, action="append")
    ap.add_argument("--out", required=True)
    a, beam_args = ap.parse_known_args()
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        lines = [p | f"Read{i}" >> beam.io.ReadFromText(pat, coder=beam.coders.BytesCoder())
                 for i, pat in enumerate(a.frames)]
        (lines | beam.Flatten()
               | beam.ParDo(Parse())
               | beam.io.WriteToParquet(a.out + "/part", SCHEMA, file_name_suffix=".parquet", codec="zstd"))


if __name__ == "__main__":
    main()
