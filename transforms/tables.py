"""Loading small reference tables (registries, deny lists) in any format."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from transforms import fileio


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
