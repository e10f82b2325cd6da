"""Read input files into Arrow tables, one file per element."""
from __future__ import annotations

import hashlib

import apache_beam as beam

from transforms.parse import read_file
from transforms.sources import SourceSpec

QUARANTINE = "quarantine"
STATS = "stats"


class ReadFiles(beam.DoFn):
    """(kind, uri) → (tag, value) pairs: (kind, table), ('quarantine',
    (part_id, table)), ('stats', FileStats dict); split with `route.by_tag`. A file never raises: unreadable files become
    quarantine rows, so one bad file cannot fail a run."""

    def __init__(self, specs: dict[str, SourceSpec], chunk_bytes: int = 16 << 20):
        self.specs = specs
        self.chunk_bytes = chunk_bytes

    def process(self, element):
        kind, uri = element
        for tag, value in read_file(uri, self.specs[kind], self.chunk_bytes):
            if tag == "records":
                yield kind, value
            elif tag == "quarantine":
                part = "q-" + hashlib.sha1(f"{kind}|{uri}".encode()).hexdigest()[:16]
                yield QUARANTINE, (part, value)
            else:
                yield STATS, {"receipt": "input", "kind": kind, **value.to_dict()}
