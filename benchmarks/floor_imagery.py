"""The imagery "floor": the least work that still reads the same frame files,
adds one H3 cell per row and writes Parquet — pyarrow only, no Beam, no
validation. hexsieve imagery's throughput is judged against this."""
import argparse
import glob
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from floor_io import read_all, read_json_lenient
from transforms import h3util

LAT = ("lat", "MAPLatitude")
LON = ("lon", "lng", "MAPLongitude")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", required=True, action="append")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = 0
    files = sorted({f for pat in a.frames for f in glob.glob(pat)})
    for i, f in enumerate(files):
        t = read_json_lenient(read_all(f), _typical_kinds)
        lat = pc.fill_null(_first(t, LAT).cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        lon = pc.fill_null(_first(t, LON).cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        t = t.append_column("cell", h3util.latlng_to_cells(lat, lon, 15))
        pq.write_table(t, os.path.join(a.out, f"part-{i:04d}.parquet"), compression="zstd")
        rows += t.num_rows
    print(rows)


def _first(t: pa.Table, names) -> pa.ChunkedArray:
    for n in names:
        if n in t.column_names:
            return t.column(n)
    return pa.chunked_array([pa.nulls(t.num_rows, pa.float64())])


def _typical_kinds(recs: list[tuple[bytes, dict]]) -> list[bytes]:
    """Lines whose fields all have the JSON kind most lines give them (judged
    on the first 1000), with a position."""
    from collections import Counter
    kinds: dict = {}
    for _, r in recs[:1000]:
        for k, v in r.items():
            if v is not None:
                kinds.setdefault(k, Counter())[type(v)] += 1
    kinds = {k: c.most_common(1)[0][0] for k, c in kinds.items()}
    return [line for line, r in recs if all(v is None or type(v) is kinds.get(k, type(v)) for k, v in r.items())
            and any(k in r for k in LAT)]


if __name__ == "__main__":
    main()
