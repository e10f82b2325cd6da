"""Beam steps of the witness job: verify beacons per gateway bucket, then join
witnesses to verified beacons per payload bucket."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.utils.shared import Shared

from schemas.provenance import SOURCE_FIELDS
from schemas.witness import RAW_BEACON, RAW_WITNESS
from transforms import fileio
from transforms.beam.coders import ArrowTableCoder  # noqa: F401 (registers the coder)
from transforms.beam.shuffle import load_group, read_ipc
from transforms.rules import Constants
from transforms.keys import KeyIndex
from transforms.witness.verify import empty_verified_beacons, verify_beacons, verify_witnesses

_RAW_B = pa.schema(list(RAW_BEACON) + list(SOURCE_FIELDS))
_RAW_W = pa.schema(list(RAW_WITNESS) + list(SOURCE_FIELDS))


def _load_ref(uri: str | None) -> pa.Table | None:
    """A staged reference table: Arrow IPC (batch runs) or Parquet (streams)."""
    if not uri:
        return None
    if uri.endswith(".arrow"):
        return read_ipc(uri)
    import io
    return pq.read_table(io.BytesIO(fileio.read_bytes(uri, decompress=False)))


class _Refs:
    """A run's reference tables and the registry's key index, as one object
    that a worker process shares between its tasks (weak-referenceable, as
    Beam's `Shared` needs)."""

    def __init__(self, refs: dict[str, str | None]):
        self.tables = {k: _load_ref(v) for k, v in refs.items()}
        self.index: KeyIndex | None = None


class _WithRefs(beam.DoFn):
    """Loads the run's normalised reference tables once per worker process.

    Through Beam's `Shared`: the DaskRunner unpickles a fresh DoFn for every
    task, so per-instance loading read the registry and rebuilt its index for
    each of a run's verify and join tasks (2M-row benchmark, 2 workers: 24
    times, 0.7 s of setup plus the index builds). Pass one `shared` handle to
    every step of a job that uses the same refs, so they share one copy."""

    def __init__(self, refs: dict[str, str | None], consts: Constants, now_ms: int, shared: Shared | None = None):
        self.refs, self.consts, self.now_ms = refs, consts, now_ms
        self.shared = shared or Shared()
        self._loaded: _Refs | None = None

    def setup(self):
        refs = self.refs
        self._loaded = self.shared.acquire(lambda: _Refs(refs), tag=tuple(sorted(refs.items())))

    def _registry_index(self) -> KeyIndex:
        """Built on first use, then reused for every bucket this process verifies."""
        loaded = self._refs()
        if loaded.index is None:  # two threads may both build it: same result
            loaded.index = KeyIndex(loaded.tables["registry"].column("pub_key"))
        return loaded.index

    def _refs(self) -> _Refs:
        if self._loaded is None:
            self.setup()
        return self._loaded

    def _ref(self, k):
        return self._refs().tables[k]


@beam.typehints.with_output_types(beam.typehints.Tuple[str, pa.Table])
class VerifyBeacons(_WithRefs):
    """(gateway bucket, shard refs) → ('vbeacon', verified beacon table)."""

    def process(self, element):
        _, refs = element
        beacons = load_group(refs, {"beacon": _RAW_B})["beacon"]
        yield "vbeacon", verify_beacons(beacons, self._ref("registry"), self._ref("deny"), self._ref("entropy"),
                                        self.consts, self.now_ms, self._registry_index())


@beam.typehints.with_output_types(beam.typehints.Tuple[str, beam.typehints.Tuple[str, pa.Table]])
class JoinWitnesses(_WithRefs):
    """(payload bucket, shard refs) → ('witness', (part, table)), ('beacon', (part, table))."""

    def process(self, element):
        (bucket, _), refs = element
        g = load_group(refs, {"vbeacon": empty_verified_beacons().schema, "witness": _RAW_W})
        w, b = verify_witnesses(g["vbeacon"], g["witness"], self._ref("registry"), self._ref("deny"),
                                self.consts, self.now_ms, self._registry_index())
        part = f"b{bucket:05d}"
        if w.num_rows:
            yield "witness", (part, w)
        if b.num_rows:
            yield "beacon", (part, b)
