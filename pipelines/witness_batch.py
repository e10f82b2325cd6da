"""The witness batch job: beacons + witnesses + registry → verified Parquet.

Graph (every arrow carries Arrow tables or shard references):
  files → Read ─beacon→ StageByKey(pub_key) → GBK → VerifyBeacons ─→ StageByKey(data) ┐
              └witness→ StageByKey(data) ─────────────────────────────────────────────┴→ GBK
        → JoinWitnesses → WriteParquet(witness), WriteParquet(beacon) → receipts
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from pipelines.batch import BatchJob, OutputTable, Stage
from schemas.witness import BEACON_OUT, WITNESS_OUT
from transforms import fileio
from transforms.beam.route import by_tag
from transforms.beam.shuffle import StageByKey
from transforms.beam.witness import JoinWitnesses, VerifyBeacons
from transforms.beam.write import parquet_bytes
from transforms.rules import describe, load_overrides
from transforms.witness import registry as reg
from transforms.witness.rules import BEACON_RULES, WITNESS_RULES
from transforms.witness.source import BEACON, WITNESS


def witness_job(registry: str, denylist: str | None = None, entropy: str | None = None,
                rules_file: str | None = None) -> BatchJob:
    """Load and check reference tables in the driver: a bad registry fails
    here with one clear line, before any worker starts."""
    registry_t, problems = reg.load_registry(registry)
    deny_t = reg.load_denylist(denylist)
    entropy_t = reg.load_entropy(entropy)
    cb = BEACON_RULES.resolve(load_overrides(rules_file, "beacon"))
    cw = WITNESS_RULES.resolve(load_overrides(rules_file, "witness"))
    version = cw.version if cb.version == BEACON_RULES.version else f"{cw.version}/{cb.version}"

    def build(stage: Stage, read: dict) -> list:
        refs = {}
        for name, t in (("registry", registry_t), ("deny", deny_t), ("entropy", entropy_t)):
            if t is None:
                refs[name] = None
                continue
            uri = fileio.join(stage.staging, "refs", f"{name}.parquet")
            fileio.write_bytes(uri, parquet_bytes(t))
            refs[name] = uri
        n = stage.n_buckets
        vb = (read["beacon"]
              | "ShardBeaconsByGateway" >> beam.ParDo(StageByKey(stage.staging, "gateway", "beacon", "pub_key", n))
              | "GroupByGateway" >> beam.GroupByKey()
              | "VerifyBeacons" >> beam.ParDo(VerifyBeacons(refs, cb, stage.now_ms)))
        vb_refs = vb | "ShardBeaconsByPayload" >> beam.ParDo(StageByKey(stage.staging, "payload", "vbeacon", "data", n))
        w_refs = read["witness"] | "ShardWitnesses" >> beam.ParDo(StageByKey(stage.staging, "payload", "witness", "data", n))
        joined = ((vb_refs, w_refs) | "AllByPayload" >> beam.Flatten()
                  | "GroupByPayload" >> beam.GroupByKey()
                  | "JoinWitnesses" >> beam.ParDo(JoinWitnesses(refs, cw, stage.now_ms)))
        out = by_tag(joined, ["witness", "beacon"], "Joined", value_type=beam.typehints.Tuple[str, pa.Table])
        return [out["witness"] | "WriteWitness" >> beam.ParDo(stage.writer(job, "witness")),
                out["beacon"] | "WriteBeacon" >> beam.ParDo(stage.writer(job, "beacon"))]

    job = BatchJob(
        source="witness",
        specs={"beacon": BEACON, "witness": WITNESS},
        tables={"witness": OutputTable(WITNESS_OUT, "received_timestamp"),
                "beacon": OutputTable(BEACON_OUT, "received_timestamp")},
        build=build,
        rules={"version": version,
               "beacon": {"version": cb.version, "constants": dict(cb.values), "table": describe(BEACON_RULES, cb)},
               "witness": {"version": cw.version, "constants": dict(cw.values), "table": describe(WITNESS_RULES, cw)}},
        rules_version=version,
        extra_manifest={"references": {"registry": registry, "denylist": denylist, "entropy": entropy,
                                       "registry_rows": registry_t.num_rows, "registry_problems": problems}},
    )
    return job
