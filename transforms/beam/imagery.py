"""Beam step of the imagery job: verify every frame of a bucket of devices.

All frames of a device share a bucket (sharded by `device_id` where they are
read), whichever input files they came in, so the sequence rules see a
device's whole series in one `verify_frames` call."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from schemas.provenance import SOURCE_FIELDS
from transforms.beam.coders import ArrowTableCoder  # noqa: F401 (registers the coder)
from transforms.beam.shuffle import load_group
from transforms.beam.witness import _WithRefs
from transforms.imagery.source import PARSE_FRAME
from transforms.imagery.verify import verify_frames
from transforms.rules import Constants

_RAW = pa.schema(list(PARSE_FRAME) + list(SOURCE_FIELDS))


@beam.typehints.with_output_types(beam.typehints.Tuple[str, beam.typehints.Tuple[str, pa.Table]])
class VerifyFrames(_WithRefs):
    """(device bucket, shard refs) → ('imagery', (part, verified frames)).

    refs: {"devices": the staged normalised device registry (Arrow IPC), or None}."""

    def __init__(self, refs: dict[str, str | None], consts_frame: Constants, consts_seq: Constants, now_ms: int):
        super().__init__(refs, consts_frame, now_ms)
        self.consts_seq = consts_seq

    def process(self, element):
        (bucket, _), refs = element
        frames = load_group(refs, {"frame": _RAW})["frame"]
        out = verify_frames(frames, self._ref("devices"), self.consts, self.consts_seq, self.now_ms)
        if out.num_rows:
            yield "imagery", (f"b{bucket:05d}", out)
