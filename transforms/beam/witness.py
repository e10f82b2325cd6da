"""Beam steps of the witness job: verify beacons per gateway bucket, then join
witnesses to verified beacons per payload bucket."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.provenance import SOURCE_FIELDS
from schemas.witness import RAW_BEACON, RAW_WITNESS
from transforms import fileio
from transforms.beam.coders import ArrowTableCoder  # noqa: F401 (registers the coder)
from transforms.beam.shuffle import load_group
from transforms.rules import Constants
from transforms.keys import KeyIndex
from transforms.witness.verify import empty_verified_beacons, verify_beacons, verify_witnesses

_RAW_B = pa.schema(list(RAW_BEACON) + list(SOURCE_FIELDS))
_RAW_W = pa.schema(list(RAW_WITNESS) + list(SOURCE_FIELDS))


def _load_parquet(uri: str | None) -> pa.Table | None:
    if not uri:
        return None
    import io
    return pq.read_table(io.BytesIO(fileio.read_bytes(uri, decompress=False)))


class _WithRefs(beam.DoFn):
    """Loads the run's normalised reference tables once per DoFn instance."""

    def __init__(self, refs: dict[str, str | None], consts: Constants, now_ms: int):
        self.refs, self.consts, self.now_ms = refs, consts, now_ms
        self._loaded = None
        self._index = None

    def setup(self):
        self._loaded = {k: _load_parquet(v) for k, v in self.refs.items()}

    def _registry_index(self) -> KeyIndex:
        """Built on first use, then reused for every bucket this worker verifies."""
        if self._index is None:
            self._index = KeyIndex(self._ref("registry").column("pub_key"))
        return self._index

    def _ref(self, k):
        if self._loaded is None:
            self.setup()
        return self._loaded[k]


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
        bucket, refs = element
        g = load_group(refs, {"vbeacon": empty_verified_beacons().schema, "witness": _RAW_W})
        w, b = verify_witnesses(g["vbeacon"], g["witness"], self._ref("registry"), self._ref("deny"),
                                self.consts, self.now_ms, self._registry_index())
        part = f"b{bucket:05d}"
        if w.num_rows:
            yield "witness", (part, w)
        if b.num_rows:
            yield "beacon", (part, b)
