"""Loading small reference tables (registries, deny lists) in any format."""
from __future__ import annotations

import io
import re

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from transforms import fileio

# A line whose first non-blank byte is "n": `null` or not JSON, never an object.
_NULL_LINE = re.compile(rb"\n[ \t\r]*n")


def read_table(uri: str, what: str) -> pa.Table:
    """CSV, JSON Lines (optionally .gz) or Parquet, decided by extension."""
    if not fileio.FileSystems.exists(uri):
        raise fileio.InputError(f"{what}: file not found: {uri}")
    data = fileio.read_bytes(uri)
    low = uri.lower().removesuffix(".gz")
    try:
        if low.endswith((".parquet", ".pq")):
            return pq.read_table(io.BytesIO(data))
        if low.endswith(".csv"):
            return pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True))
        if low.endswith((".jsonl", ".json", ".ndjson")):
            if not data.strip():
                raise fileio.InputError(f"{what}: {uri} is empty")
            # pyarrow 25's JSON reader crashes the process on a first value of
            # `null`, and makes a row of nulls of one further down.
            null = _NULL_LINE.search(b"\n" + data)
            if null:
                at = null.start()
                line_no = data.count(b"\n", 0, at) + 1
                raise fileio.InputError(f"{what}: cannot parse {uri}: line {line_no} is not a JSON object "
                                        f"(starts with {data[at:at + 12].lstrip()!r})")
            return pajson.read_json(io.BytesIO(data))
    except fileio.InputError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as e:
        raise fileio.InputError(f"{what}: cannot parse {uri}: {str(e).splitlines()[0]}") from None
    raise fileio.InputError(f"{what}: unsupported file type {uri} (use .csv, .jsonl or .parquet)")


def require_columns(t: pa.Table, cols: list[str], uri: str, what: str) -> None:
    missing = [c for c in cols if c not in t.column_names]
    if missing:
        raise fileio.InputError(
            f"{what}: {uri} lacks column(s) {', '.join(missing)} (has: {', '.join(t.column_names)})")
