"""Field constructor that keeps units and meaning next to the type.

Units live in Arrow field metadata (``unit``, ``description``) so they travel
with every Parquet file we write and `hexsieve schema NAME` can print them.
"""
from __future__ import annotations

import pyarrow as pa


def field(name: str, type_: pa.DataType, doc: str = "", unit: str = "",
          nullable: bool = True) -> pa.Field:
    meta = {}
    if doc:
        meta["description"] = doc
    if unit:
        meta["unit"] = unit
    return pa.field(name, type_, nullable=nullable, metadata=meta or None)


def schema(fields: list[pa.Field], doc: str) -> pa.Schema:
    return pa.schema(fields, metadata={"description": doc})


def names(s: pa.Schema) -> list[str]:
    return [f.name for f in s]


def required(s: pa.Schema) -> list[str]:
    """Fields a record must carry; a record missing one is quarantined."""
    return [f.name for f in s if not f.nullable]


TS_UTC = pa.timestamp("us", tz="UTC")
