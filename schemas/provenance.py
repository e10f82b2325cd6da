"""Provenance and verdict columns carried by every validated output row.

They answer the buyer's three questions for each row: where did it come from
(source_*), which rules judged it (rules_version, pipeline_version, run_id),
and what was the judgement (verdict, reasons).
"""
import pyarrow as pa

from schemas._fields import TS_UTC, field

VERDICT_VALID = "valid"
VERDICT_INVALID = "invalid"

VERDICT_FIELDS = [
    field("verdict", pa.string(), "'valid' or 'invalid'", nullable=False),
    field("reasons", pa.list_(pa.string()),
          "reason codes of every failed rule, in rule-table order; empty when valid",
          nullable=False),
]

# Columns attached when a record is read; they survive shuffles and joins.
SOURCE_FIELDS = [
    field("source_uri", pa.string(), "input file the record was read from", nullable=False),
    field("source_record", pa.int64(),
          "1-based line number in text files, 0-based row number in Parquet files",
          nullable=False),
    field("source_sha256", pa.string(), "sha256 (hex) of the whole input file", nullable=False),
    field("record_sha256", pa.string(),
          "sha256 (hex) of the raw record: the line bytes (no newline) for text, "
          "canonical JSON of the row for Parquet", nullable=False),
]

# Columns stamped when a row is written.
RUN_FIELDS = [
    field("run_id", pa.string(), "run that produced the row", nullable=False),
    field("pipeline_version", pa.string(), "hexsieve version", nullable=False),
    field("rules_version", pa.string(),
          "rule-set version, with a hash suffix when constants were overridden", nullable=False),
    field("ingested_at", TS_UTC, "processing time of the run (--now)", unit="UTC", nullable=False),
]

PROVENANCE_FIELDS = SOURCE_FIELDS + RUN_FIELDS
