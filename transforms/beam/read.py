"""Read input files into Arrow tables, one file per element."""
from __future__ import annotations


import threading

import apache_beam as beam
import pyarrow as pa

from transforms.beam.coders import TAGGED_TABLE

from transforms.parse import ReadBuffer, duplicate_file, read_file
from transforms.sources import SourceSpec

QUARANTINE = "quarantine"
STATS = "stats"


@beam.typehints.with_output_types(TAGGED_TABLE)
class ReadFiles(beam.DoFn):
    """(kind, uri) → (tag, table) pairs: (kind, records), ('quarantine',
    rows), ('stats', one-row FileStats); split with `route.by_tag`. A file never raises: unreadable files become
    quarantine rows, so one bad file cannot fail a run."""

    def __init__(self, specs: dict[str, SourceSpec], chunk_bytes: int = 16 << 20,
                 duplicates: dict[str, str] | None = None, progress_dir: str | None = None):
        self.specs = specs
        self.chunk_bytes = chunk_bytes
        self.duplicates = duplicates or {}
        self.progress_dir = progress_dir  # a marker per finished file, for the driver's progress bar
        self._threads = None

    def __getstate__(self):
        return {**self.__dict__, "_threads": None}

    def _buffer(self) -> ReadBuffer:
        """This thread's read buffer: a runner may call one DoFn instance
        from several threads, and a buffer is overwritten by every read."""
        if self._threads is None:
            self._threads = threading.local()
        buf = getattr(self._threads, "buffer", None)
        if buf is None:
            buf = self._threads.buffer = ReadBuffer()
        return buf

    def process(self, element):
        kind, uri = element
        if uri in self.duplicates:
            it = duplicate_file(uri, self.specs[kind], self.duplicates[uri])
        else:
            it = read_file(uri, self.specs[kind], self.chunk_bytes, buffer=self._buffer())
        for tag, value in it:
            if tag == "records":
                yield kind, value
            elif tag == "quarantine":
                yield QUARANTINE, value
            else:
                if self.progress_dir:
                    import hashlib
                    from transforms import fileio
                    name = hashlib.sha1(uri.encode()).hexdigest()[:20]
                    fileio.write_bytes(fileio.join(self.progress_dir, f"input-{name}.json"),
                                       b'{"records": %d}' % value.records)
                yield STATS, pa.Table.from_pylist([{"receipt": "input", "kind": kind, **value.to_dict()}])


def stats_receipt(t: pa.Table) -> dict:
    return t.to_pylist()[0]


def quarantine_part(t: pa.Table) -> tuple[str, pa.Table]:
    """Quarantine rows of one input file get a file name derived from it."""
    import hashlib
    key = f"{t.column('source')[0].as_py()}|{t.column('source_uri')[0].as_py()}"
    return "q-" + hashlib.sha1(key.encode()).hexdigest()[:16], t


class StatsReceipt(beam.DoFn):
    def process(self, t: pa.Table):
        yield stats_receipt(t)
