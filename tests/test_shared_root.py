"""Several sources batched into one output root: each run replaces only its
own source's rows, so the shared quarantine table keeps everybody's."""
import os
from datetime import datetime, timezone

import duckdb

from pipelines.batch import RunSettings, execute
from pipelines.sensor_batch import sensor_job
from pipelines.witness_batch import witness_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = os.path.join(ROOT, "sample_data", "witness")
S = os.path.join(ROOT, "sample_data", "sensor")
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)


def run_witness(out):
    return execute(witness_job(f"{W}/registry.csv", f"{W}/denylist.csv", f"{W}/entropy.jsonl"),
                   RunSettings(out=str(out), now=NOW, inputs={"beacon": [f"{W}/beacons-*.jsonl.gz"],
                                                              "witness": [f"{W}/witnesses-*.jsonl"]}))


def run_sensor(out):
    return execute(sensor_job(f"{S}/stations.csv"), RunSettings(out=str(out), now=NOW,
                                                               inputs={"reading": [f"{S}/readings-*"]}))


def quarantine_by_pipeline(out):
    return dict(duckdb.sql(f"""SELECT CASE WHEN source IN ('beacon', 'witness') THEN 'witness' ELSE source END,
                                      count(*)
                               FROM read_parquet('{out}/quarantine/*/*.parquet') GROUP BY 1""").fetchall())


def test_sources_share_an_output_root_without_losing_rows(tmp_path):
    out = tmp_path / "out"
    w = run_witness(out)
    s = run_sensor(out)
    expected_w = w["counts"]["by_table"]["quarantine"]["quarantined"]
    expected_s = s["counts"]["by_table"]["quarantine"]["quarantined"]
    assert expected_w > 0 and expected_s > 0
    q = quarantine_by_pipeline(out)
    assert q.get("witness") == expected_w and sum(v for k, v in q.items() if k != "witness") == expected_s
    # Re-running witness replaces only witness rows: no loss, no duplicates.
    run_witness(out)
    assert quarantine_by_pipeline(out) == q
    (n,) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/witness/*/*.parquet')").fetchall()[0]
    assert n == w["counts"]["by_table"]["witness"]["valid"] + w["counts"]["by_table"]["witness"]["invalid"]
