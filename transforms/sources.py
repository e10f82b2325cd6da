"""How a logical input (beacon, witness, frame, reading…) is recognised.

A `SourceSpec` names the canonical Arrow schema and the tolerated variants
(nested `{"received_timestamp", "report": {...}}` objects, renamed fields).
Parsing code is shared by every source; a new source declares a spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import pyarrow as pa

# A normaliser turns the parsed table into the canonical schema, vectorized.
# It returns (table, bad_mask or None, messages for the bad rows or None).
Normalizer = Callable[[pa.Table], "tuple[pa.Table, object, object]"]

# An alternative parse type for a field and the converter from it to the
# field's primary parse type (None = plain cast).
Alternative = tuple[pa.DataType, "Callable[[pa.Array], pa.Array] | None"]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    schema: pa.Schema
    nested_key: str | None = "report"
    aliases: Mapping[str, str] = field(default_factory=dict)
    # Parse-time types that differ from the canonical ones (e.g. a timestamp
    # accepted as ISO text or epoch number is parsed as string).
    parse_types: Mapping[str, pa.DataType] = field(default_factory=dict)
    normalize: Normalizer | None = None
    event_time: str | None = None       # canonical column holding event time (ms)
    event_time_unit: str = "ms"
    # pyarrow.json does not coerce between JSON kinds (an explicit string
    # field given a number fails the block), so a field that may arrive as
    # "text or number" or "object or number" lists alternative parse types,
    # tried only when a block fails on that very column.
    parse_alternatives: Mapping[str, tuple[Alternative, ...]] = field(default_factory=dict)

    def parse_schema(self) -> pa.Schema:
        """The schema pyarrow.json parses with: all fields nullable, aliases and
        the nested form included, so one pass accepts every tolerated shape."""
        flat = [pa.field(f.name, self.parse_types.get(f.name, f.type), nullable=True)
                for f in self.schema]
        names = {f.name for f in flat}
        for alias, canon in self.aliases.items():
            if alias not in names:
                t = self.parse_types.get(alias, self.parse_types.get(canon, self.schema.field(canon).type))
                flat.append(pa.field(alias, t, nullable=True))
                names.add(alias)
        if self.nested_key and self.nested_key not in names:
            flat.append(pa.field(self.nested_key, pa.struct(
                [pa.field(f.name, f.type, nullable=True) for f in flat]), nullable=True))
        return pa.schema(flat)

    def alternatives(self) -> dict[str, tuple[Alternative, ...]]:
        """Alternatives per parse-schema column; an alias without its own parse
        type shares its canonical field's alternatives, as it shares its type."""
        out = {k: tuple(v) for k, v in self.parse_alternatives.items()}
        for alias, canon in self.aliases.items():
            if alias not in out and alias not in self.parse_types and canon in out:
                out[alias] = out[canon]
        return out

    def required(self) -> list[str]:
        return [f.name for f in self.schema if not f.nullable]
