"""The imagery batch job: dashcam / street-level frame metadata (+ optional
device registry) → verified frames as Parquet.

Graph (Arrow tables inside each step; shard references between steps):
  files → Read+shard(device_id) → GBK(device bucket) → VerifyFrames+write(imagery) → receipts

Every frame of a device lands in one bucket whatever file it came in, so the
sequence rules (time order, implied speed, teleport, zigzag, stationary)
judge the device's whole series in one `verify_frames` call. Output:
OUT/imagery/date=<UTC date of captured_at>/.
"""
from __future__ import annotations

import apache_beam as beam

from pipelines.batch import BatchJob, OutputTable, Stage
from schemas.imagery import IMAGERY_OUT
from transforms import fileio
from transforms.beam.fuse import Fused
from transforms.beam.imagery import VerifyFrames
from transforms.errors import first_line
from transforms.imagery.rules import FRAME_RULES, SEQUENCE_RULES, rules_version
from transforms.imagery.source import FRAME
from transforms.imagery.verify import device_registry
from transforms.rules import describe, load_overrides
from transforms.tables import read_table, require_columns


def load_devices(path: str | None):
    """The optional device registry, normalised (fails fast with one line)."""
    if not path:
        return None, 0
    raw = read_table(path, "--devices")
    require_columns(raw, ["device_id"], path, "--devices")
    try:
        t = device_registry(raw)
    except (ValueError, TypeError) as e:  # e.g. frame_spacing_m that is not a number
        raise fileio.InputError(f"--devices: {path}: {first_line(e)}") from None
    return t, raw.num_rows - t.num_rows


def imagery_job(devices: str | None = None, rules_file: str | None = None) -> BatchJob:
    """Load and check the device registry in the driver: a bad registry fails
    here with one clear line, before any worker starts."""
    devices_t, dropped = load_devices(devices)
    cf = FRAME_RULES.resolve(load_overrides(rules_file, FRAME_RULES.name))
    cs = SEQUENCE_RULES.resolve(load_overrides(rules_file, SEQUENCE_RULES.name))
    version = rules_version(cf, cs)

    def build(stage: Stage, shards: dict) -> list:
        refs = {"devices": None}
        if devices_t is not None:
            refs["devices"] = stage.stage_ref("devices", devices_t)
        return [(shards["frame"]
                 | "GroupByDevice" >> beam.GroupByKey()
                 | "VerifyAndWrite" >> beam.ParDo(Fused(
                     VerifyFrames(refs, cf, cs, stage.now_ms), {"imagery": stage.writer(job, "imagery")}))
                 | "Receipts" >> beam.Values())]

    job = BatchJob(
        source="imagery",
        specs={"frame": FRAME},
        tables={"imagery": OutputTable(IMAGERY_OUT, "captured_at")},
        build=build,
        shard_keys={"frame": ("device", "device_id")},
        rules={"version": version,
               FRAME_RULES.name: {"version": cf.version, "constants": dict(cf.values),
                                  "table": describe(FRAME_RULES, cf)},
               SEQUENCE_RULES.name: {"version": cs.version, "constants": dict(cs.values),
                                     "table": describe(SEQUENCE_RULES, cs)}},
        rules_version=version,
        extra_manifest={"references": {"devices": devices,
                                       "devices_rows": 0 if devices_t is None else devices_t.num_rows,
                                       "devices_dropped": dropped}},
    )
    return job
