"""The witness batch job: beacons + witnesses + registry → verified Parquet.

Graph (Arrow tables inside each step; shard references between steps):
  files → Read+shard ─beacon→ GBK(gateway) → VerifyBeacons+shard(payload) ┐
                     └witness─────────────────────────────────────────────┴→ GBK(payload)
        → JoinWitnesses+write(witness, beacon) → receipts
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.utils.shared import Shared

from pipelines.batch import BatchJob, OutputTable, Stage
from schemas.witness import BEACON_OUT, WITNESS_OUT
from transforms.beam.fuse import Fused
from transforms.beam.shuffle import StageByKey
from transforms.beam.witness import JoinWitnesses, VerifyBeacons
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

    def build(stage: Stage, shards: dict) -> list:
        refs = {}
        for name, t in (("registry", registry_t), ("deny", deny_t), ("entropy", entropy_t)):
            if t is None:
                refs[name] = None
                continue
            refs[name] = stage.stage_ref(name, t)
        n = stage.n_buckets
        shared = Shared()  # one copy of the refs per worker process, for both steps
        vb_refs = (shards["beacon"]
                   | "GroupByGateway" >> beam.GroupByKey()
                   | "VerifyBeacons" >> beam.ParDo(Fused(
                       VerifyBeacons(refs, cb, stage.now_ms, shared),
                       {"vbeacon": StageByKey(stage.staging, "payload", "vbeacon", "data", n, stage.salts)}))
                   | "BeaconRefs" >> beam.Values())
        return [((vb_refs, shards["witness"]) | "AllByPayload" >> beam.Flatten()
                 | "GroupByPayload" >> beam.GroupByKey()
                 | "JoinAndWrite" >> beam.ParDo(Fused(
                     JoinWitnesses(refs, cw, stage.now_ms, shared),
                     {"witness": stage.writer(job, "witness"), "beacon": stage.writer(job, "beacon")}))
                 | "Receipts" >> beam.Values())]

    job = BatchJob(
        source="witness",
        specs={"beacon": BEACON, "witness": WITNESS},
        tables={"witness": OutputTable(WITNESS_OUT, "received_timestamp"),
                "beacon": OutputTable(BEACON_OUT, "received_timestamp")},
        build=build,
        shard_keys={"beacon": ("gateway", "pub_key"), "witness": ("payload", "data")},
        rules={"version": version,
               "beacon": {"version": cb.version, "constants": dict(cb.values), "table": describe(BEACON_RULES, cb)},
               "witness": {"version": cw.version, "constants": dict(cw.values), "table": describe(WITNESS_RULES, cw)}},
        rules_version=version,
        extra_manifest={"references": {"registry": registry, "denylist": denylist, "entropy": entropy,
                                       "registry_rows": registry_t.num_rows, "registry_problems": problems}},
    )
    return job
