"""Quarantine: records that could not be parsed into their source schema.

A malformed record is never dropped: it lands here with its raw bytes, where it
came from, and the parser's error, so the per-file accounting still adds up.
"""
import pyarrow as pa

from schemas._fields import TS_UTC, field, schema

QUARANTINE = schema([
    field("source", pa.string(), "logical input: beacon, witness, frame, reading, ...", nullable=False),
    field("source_uri", pa.string(), "input file", nullable=False),
    field("source_record", pa.int64(),
          "1-based line number (text) / 0-based row (Parquet); 0 for whole-file errors", nullable=False),
    field("source_sha256", pa.string(), "sha256 (hex) of the input file", nullable=False),
    field("record_sha256", pa.string(), "sha256 (hex) of raw_record", nullable=False),
    field("raw_record", pa.binary(), "the raw bytes of the record (first 1 MiB)", nullable=False),
    field("raw_truncated", pa.bool_(), "raw_record was cut at 1 MiB", nullable=False),
    field("error_code", pa.string(),
          "malformed_json | not_an_object | missing_field | wrong_type | bad_value | "
          "bad_encoding | unreadable_file | empty_file | record_too_large | duplicate_file", nullable=False),
    field("error", pa.string(), "human-readable parser error", nullable=False),
    field("run_id", pa.string(), "run that quarantined the record", nullable=False),
    field("pipeline_version", pa.string(), "hexsieve version", nullable=False),
    field("ingested_at", TS_UTC, "processing time of the run", unit="UTC", nullable=False),
], "Records that could not be parsed, with raw bytes and the error")
