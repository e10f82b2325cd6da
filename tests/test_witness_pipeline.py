"""The witness batch pipeline end to end on the real Beam DirectRunner."""
import glob
import gzip
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import duckdb
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from pipelines.batch import RunSettings, execute
from pipelines.manifest import account
from pipelines.witness_batch import witness_job
from schemas.quarantine import QUARANTINE
from schemas.witness import BEACON_OUT, WITNESS_OUT
from transforms.witness.rules import all_reasons

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "witness")
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)


def run_sample(out, witnesses=None, beacons=None, **kw):
    job = witness_job(f"{SAMPLE}/registry.csv", f"{SAMPLE}/denylist.csv", f"{SAMPLE}/entropy.jsonl")
    return execute(job, RunSettings(
        out=str(out), now=NOW, inputs={"beacon": beacons or [f"{SAMPLE}/beacons-*.jsonl.gz"],
                                       "witness": witnesses or [f"{SAMPLE}/witnesses-*.jsonl"]}, **kw))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return out, run_sample(out)


def q(out, sql):
    return duckdb.sql(sql.replace("OUT", str(out))).fetchall()


def test_accounting_adds_up_per_file(sample_run):
    out, doc = sample_run
    acc = doc["accounting"]
    assert acc["ok"]
    files = {f["uri"] for f in acc["files"]}
    assert files == set(glob.glob(f"{SAMPLE}/beacons-*.jsonl.gz") + glob.glob(f"{SAMPLE}/witnesses-*.jsonl"))
    for f in acc["files"]:
        assert f["records"] == f["valid"] + f["invalid"] + f["quarantined"] > 0
    # And the committed Parquet agrees with the manifest, file by file.
    rows = dict(q(out, "SELECT source_uri, count(*) FROM read_parquet('OUT/*/*/*.parquet', union_by_name=true) GROUP BY 1"))
    for f in acc["files"]:
        assert rows[f["uri"]] == f["records"]


def test_a_run_leaves_nothing_frozen_from_the_garbage_collector(sample_run):
    """The run freezes what is alive at its start (pipelines/batch.py) and
    unfreezes it at the end: a process running many jobs (scheduled runs)
    must still be able to collect each finished run's graph."""
    import gc
    assert gc.get_freeze_count() == 0


def test_every_reason_code_appears_in_sample_output(sample_run):
    out, _ = sample_run
    seen = {r[0] for r in q(out, "SELECT DISTINCT unnest(reasons) FROM read_parquet('OUT/witness/*/*.parquet') "
                                 "UNION SELECT DISTINCT unnest(reasons) FROM read_parquet('OUT/beacon/*/*.parquet')")}
    assert set(all_reasons()) <= seen, set(all_reasons()) - seen


def test_malformed_lines_are_quarantined_with_raw_text_and_line(sample_run):
    out, _ = sample_run
    rows = q(out, "SELECT source_uri, source_record, raw_record, error_code, error, record_sha256 "
                  "FROM read_parquet('OUT/quarantine/*/*.parquet')")
    assert len(rows) == 12
    codes = {r[3] for r in rows}
    assert {"malformed_json", "not_an_object", "missing_field", "wrong_type", "bad_encoding"} <= codes
    for uri, line, raw, code, err, sha in rows:
        opener = gzip.open if uri.endswith(".gz") else open
        with opener(uri, "rb") as f:
            lines = f.read().split(b"\n")
        assert lines[line - 1] == raw, (uri, line)
        assert hashlib.sha256(raw).hexdigest() == sha
        assert err


def test_output_parquet_schemas_match_declared_schemas(sample_run):
    out, _ = sample_run
    for table, schema in (("witness", WITNESS_OUT), ("beacon", BEACON_OUT), ("quarantine", QUARANTINE)):
        files = glob.glob(f"{out}/{table}/date=*/*.parquet")
        assert files, table
        for f in files:
            s = pq.read_schema(f)
            assert [(x.name, x.type) for x in s] == [(x.name, x.type) for x in schema], table
            assert s.field(0).metadata == schema.field(0).metadata


def test_provenance_columns(sample_run):
    out, doc = sample_run
    (n_bad,) = q(out, f"""SELECT count(*) FROM read_parquet('OUT/witness/*/*.parquet')
        WHERE run_id <> '{doc["run_id"]}' OR rules_version <> '{doc["rules"]["version"]}'
           OR ingested_at <> TIMESTAMPTZ '2026-11-21 00:00:00+00' OR source_record < 1
           OR length(record_sha256) <> 64 OR length(source_sha256) <> 64""")[0]
    assert n_bad == 0
    sha = {i["uri"]: i["sha256"] for i in doc["inputs"]}
    for uri, digest in sha.items():
        assert hashlib.sha256(open(uri, "rb").read()).hexdigest() == digest
    # record_sha256 is the hash of the raw line.
    uri, line, rec = q(out, "SELECT source_uri, source_record, record_sha256 FROM read_parquet('OUT/witness/*/*.parquet') LIMIT 1")[0]
    raw = open(uri, "rb").read().split(b"\n")[line - 1]
    assert hashlib.sha256(raw).hexdigest() == rec


def test_nested_helium_form_is_accepted(sample_run):
    out, _ = sample_run
    nested = 0
    for f in glob.glob(f"{SAMPLE}/beacons-*.jsonl.gz"):
        for line in gzip.open(f, "rb").read().split(b"\n"):
            try:
                nested += '"report"' in line.decode() and isinstance(json.loads(line).get("report"), dict)
            except Exception:
                pass
    assert nested > 100
    (n,) = q(out, "SELECT count(*) FROM read_parquet('OUT/beacon/*/*.parquet')")[0]
    (nq,) = q(out, "SELECT count(*) FROM read_parquet('OUT/quarantine/*/*.parquet') WHERE source = 'beacon'")[0]
    total = sum(1 for f in glob.glob(f"{SAMPLE}/beacons-*.jsonl.gz")
                for l in gzip.open(f, "rb").read().split(b"\n") if l.strip())
    assert n + nq == total


def test_parquet_input_gives_same_verdicts(tmp_path, sample_run):
    out_json, _ = sample_run
    src = f"{SAMPLE}/witnesses-0001.jsonl"  # a file without malformed lines
    t = pajson.read_json(src)
    pq.write_table(t, tmp_path / "witnesses.parquet")
    out = tmp_path / "o"
    doc = run_sample(out, witnesses=[str(tmp_path / "witnesses.parquet"), f"{SAMPLE}/witnesses-000[023].jsonl"])
    assert doc["accounting"]["ok"]
    a = q(out_json, f"SELECT pub_key, data, received_timestamp, verdict, reasons FROM read_parquet('OUT/witness/*/*.parquet') WHERE source_uri = '{src}' ORDER BY ALL")
    b = q(out, "SELECT pub_key, data, received_timestamp, verdict, reasons FROM read_parquet('OUT/witness/*/*.parquet') WHERE source_uri LIKE '%.parquet' ORDER BY ALL")
    assert a == b and len(a) == t.num_rows
    (mn, mx) = q(out, "SELECT min(source_record), max(source_record) FROM read_parquet('OUT/witness/*/*.parquet') WHERE source_uri LIKE '%.parquet'")[0]
    assert (mn, mx) == (0, t.num_rows - 1)  # 0-based rows in Parquet files


def test_rerun_replaces_without_duplicates(tmp_path):
    out = tmp_path / "o"
    d1 = run_sample(out)
    h1 = {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in glob.glob(f"{out}/*/*/*.parquet")}
    d2 = run_sample(out)
    h2 = {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in glob.glob(f"{out}/*/*/*.parquet")}
    assert h1 == h2
    assert d1["counts"] == d2["counts"]
    (n,) = q(out, "SELECT count(*) - count(DISTINCT record_sha256) FROM read_parquet('OUT/witness/*/*.parquet')")[0]
    assert n == 0
    assert not os.path.exists(out / "_staging")


def test_accounting_mismatch_is_detected(sample_run):
    out, doc = sample_run
    inputs = [{"uri": f["uri"], "kind": f["kind"], "records": f["records"]} for f in doc["accounting"]["files"]]
    outputs = [{"per_source": {f["uri"]: {"valid": f["valid"], "invalid": f["invalid"],
                                          "quarantined": f["quarantined"]}}} for f in doc["accounting"]["files"]]
    assert account(inputs, outputs)["ok"]
    outputs[0]["per_source"][inputs[0]["uri"]]["valid"] -= 1  # one row lost
    bad = account(inputs, outputs)
    assert not bad["ok"] and not bad["files"][0]["ok"]


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=240)


def test_cli_batch_prints_summary_and_commits(tmp_path):
    out = tmp_path / "cli"
    r = _cli("batch", "witness", "--beacons", f"{SAMPLE}/beacons-*.jsonl.gz", "--witnesses",
             f"{SAMPLE}/witnesses-*.jsonl", "--registry", f"{SAMPLE}/registry.csv", "--out", str(out),
             "--now", "2026-11-21T00:00:00Z")
    assert r.returncode == 0, r.stderr
    assert "accounting OK" in r.stdout and "witness" in r.stdout
    assert "Traceback" not in r.stderr and "apitools" not in r.stderr
    assert len(glob.glob(f"{out}/_runs/*.json")) == 1


def test_hexsieve_command_skips_interpreter_teardown_only_after_a_run(tmp_path):
    """`hexsieve` (pipelines.cli:entry) leaves right after a successful batch
    run, output flushed, without the interpreter's teardown (atexit handlers
    are part of it and show whether it ran); other commands exit normally."""
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        assert tomllib.load(f)["project"]["scripts"]["hexsieve"] == "pipelines.cli:entry"
    probe = ("import atexit, sys; atexit.register(lambda: print('TEARDOWN', flush=True)); "
             "from pipelines.cli import entry; entry(sys.argv[1:])")
    run = ["batch", "witness", "--beacons", f"{SAMPLE}/beacons-*.jsonl.gz", "--witnesses", f"{SAMPLE}/witnesses-*.jsonl",
           "--registry", f"{SAMPLE}/registry.csv", "--out", str(tmp_path / "o"), "--now", "2026-11-21T00:00:00Z"]
    r = subprocess.run([sys.executable, "-c", probe, *run], capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert r.returncode == 0, r.stderr
    assert "accounting OK" in r.stdout and "TEARDOWN" not in r.stdout
    r = subprocess.run([sys.executable, "-c", probe, "schema", "raw_witness"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0 and "ddBm" in r.stdout and "TEARDOWN" in r.stdout


@pytest.mark.parametrize("args,msg", [
    (["--beacons", "/nonexistent/*.gz"], "glob matches no file: /nonexistent/*.gz"),
    (["--registry", "/nonexistent/registry.csv"], "file not found: /nonexistent/registry.csv"),
    (["--registry", f"{SAMPLE}/entropy.jsonl"], "lacks column(s) pub_key, location"),
    (["--now", "yesterday"], "not an ISO 8601 time"),
])
def test_cli_bad_arguments_give_one_line_errors(tmp_path, args, msg):
    base = {"--beacons": f"{SAMPLE}/beacons-*.jsonl.gz", "--witnesses": f"{SAMPLE}/witnesses-*.jsonl",
            "--registry": f"{SAMPLE}/registry.csv", "--out": str(tmp_path / "o")}
    base.update(dict(zip(args[::2], args[1::2])))
    r = _cli("batch", "witness", *[x for kv in base.items() for x in kv])
    assert r.returncode != 0
    assert msg in r.stderr and "Traceback" not in r.stderr


def test_cli_schema_prints_units():
    r = _cli("schema", "raw_witness")
    assert r.returncode == 0
    assert "signal" in r.stdout and "ddBm" in r.stdout and "received_timestamp" in r.stdout
    r = _cli("schema", "nope")
    assert r.returncode != 0 and "unknown schema" in r.stderr


def test_multi_member_gzip_input_gives_each_record_once(tmp_path):
    """A beacon file re-compressed as several gzip members (as `cat a.gz b.gz`
    or a log shipper writes it), read in steps smaller than a member, gives
    the rows of the one-member file: same records, same line numbers."""
    src = sorted(glob.glob(f"{SAMPLE}/beacons-*.jsonl.gz"))[0]
    lines = gzip.open(src, "rb").read().splitlines(keepends=True)
    cuts = [0, 7, len(lines) // 3, len(lines) // 3 + 1, len(lines)]
    d = tmp_path / "in"
    d.mkdir()
    multi = d / os.path.basename(src)
    multi.write_bytes(b"".join(gzip.compress(b"".join(lines[a:b])) for a, b in zip(cuts, cuts[1:])))
    wit = [f"{SAMPLE}/witnesses-*.jsonl"]
    one = run_sample(tmp_path / "one", beacons=[src], witnesses=wit, chunk_bytes=4096)
    many = run_sample(tmp_path / "many", beacons=[str(multi)], witnesses=wit, chunk_bytes=4096)
    assert one["accounting"]["ok"] and many["accounting"]["ok"]
    sql = ("SELECT source_record, record_sha256, verdict FROM read_parquet('{o}/beacon/*/*.parquet') "
           "UNION ALL SELECT source_record, record_sha256, error_code FROM read_parquet('{o}/quarantine/*/*.parquet') "
           "WHERE source_uri LIKE '%beacons%' ORDER BY ALL")
    a, b = duckdb.sql(sql.format(o=tmp_path / "one")).fetchall(), duckdb.sql(sql.format(o=tmp_path / "many")).fetchall()
    assert len(a) == sum(1 for x in lines if x.strip()) and a == b  # blank lines are no records
