"""What a `batch` run may touch: only its own output root, each input file
once, and only the (table, date) partitions it writes. Real CLI, real Beam,
real Parquet read back with DuckDB."""
import os
import shutil
import subprocess
import sys

import duckdb
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S = os.path.join(ROOT, "sample_data", "sensor")
W = os.path.join(ROOT, "sample_data", "witness")


def hx(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=180)


def sensor(out, *readings: str, now: str, extra=()) -> subprocess.CompletedProcess:
    args = ["batch", "sensor", *[f"--readings={r}" for r in readings], f"--stations={S}/stations.csv",
            f"--out={out}", f"--now={now}", "--quiet", *extra]
    return hx(*args)


def rows_by_date(out, table: str) -> dict:
    con = duckdb.connect()
    got = con.execute(f"SELECT CAST(date AS VARCHAR), count(*) FROM read_parquet('{out}/{table}/*/*.parquet', "
                      "hive_partitioning=true) GROUP BY ALL ORDER BY 1").fetchall()
    return dict(got)


@pytest.mark.parametrize("run_id", ["..", "../elsewhere", "/abs", "a b", ".hidden", "x" * 129])
def test_a_run_id_that_is_not_a_plain_name_is_refused_and_nothing_is_touched(tmp_path, run_id):
    out = tmp_path / "p" / "out"
    first = sensor(out, f"{S}/readings-0003.jsonl", now="2026-11-21T00:00:00Z")
    assert first.returncode == 0, first.stderr
    before = sorted(os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs)
    r = sensor(out, f"{S}/readings-0003.jsonl", now="2026-11-21T00:00:00Z", extra=[f"--run-id={run_id}"])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--run-id" in r.stderr
    after = sorted(os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs)
    assert after == before


def test_one_file_named_several_ways_is_read_once(tmp_path):
    rel = os.path.relpath(f"{S}/readings-0001.jsonl", ROOT)
    link = tmp_path / "link.jsonl"
    os.symlink(f"{S}/readings-0001.jsonl", link)
    once = sensor(tmp_path / "once", f"{S}/readings-0001.jsonl", now="2026-11-21T00:00:00Z")
    many = sensor(tmp_path / "many", rel, f"./{rel}", f"{S}/../sensor/readings-000[1].jsonl", str(link),
                  now="2026-11-21T00:00:00Z")
    assert once.returncode == 0 and many.returncode == 0, many.stderr
    assert rows_by_date(tmp_path / "many", "sensor") == rows_by_date(tmp_path / "once", "sensor")
    assert rows_by_date(tmp_path / "many", "quarantine") == rows_by_date(tmp_path / "once", "quarantine")


def test_a_file_given_as_two_kinds_is_refused_in_one_line(tmp_path):
    r = hx("batch", "witness", f"--beacons={W}/witnesses-0000.jsonl", f"--witnesses={W}/witnesses-*.jsonl",
           f"--registry={W}/registry.csv", f"--out={tmp_path / 'out'}", "--quiet")
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {W}/witnesses-0000.jsonl is given as both --beacons and --witnesses"
    assert not (tmp_path / "out" / "witness").exists()


def test_a_file_named_explicitly_is_read_even_if_its_name_starts_with_underscore(tmp_path):
    shutil.copy(f"{S}/readings-0003.jsonl", tmp_path / "_part.jsonl")
    r = sensor(tmp_path / "out", str(tmp_path / "_part.jsonl"), now="2026-11-21T00:00:00Z")
    assert r.returncode == 0, r.stderr
    assert sum(rows_by_date(tmp_path / "out", "sensor").values()) > 0
    # Through a glob, writers' "_…" temporary files are still skipped.
    g = sensor(tmp_path / "out2", str(tmp_path / "*.jsonl"), now="2026-11-21T00:00:00Z")
    assert g.returncode == 2 and "glob matches no file" in g.stderr


def test_rerunning_a_job_on_another_day_neither_duplicates_nor_moves_its_quarantine(tmp_path):
    out = tmp_path / "out"
    for now in ("2026-11-21T00:00:00Z", "2026-11-25T06:00:00Z", "2026-12-31T23:00:00Z"):
        r = sensor(out, f"{S}/readings-0001.jsonl", now=now)
        assert r.returncode == 0, r.stderr
        q = rows_by_date(out, "quarantine")
        # readings-0001's packets fall on 2026-11-20: its malformed lines go there, whatever the run date.
        assert q == {"2026-11-20": 5}, q


def test_a_run_whose_quarantine_lands_on_a_date_does_not_replace_that_dates_data(tmp_path):
    """Quarantine rows once made a run the owner of every table's partition on
    their date: an unrelated run deleted 2,910 valid rows of 2026-11-19."""
    out = tmp_path / "out"
    a = sensor(out, f"{S}/readings-0000.jsonl.gz", f"{S}/readings-0001.jsonl", now="2026-11-25T06:00:00Z")
    assert a.returncode == 0, a.stderr
    before = rows_by_date(out, "sensor")
    assert before.get("2026-11-19", 0) > 0
    # Run B: readings-0001 (5 malformed lines, rows of 2026-11-20) processed "on" 2026-11-19,
    # a date that holds only run A's rows of readings-0000.
    b = sensor(out, f"{S}/readings-0001.jsonl", now="2026-11-19T06:00:00Z")
    assert b.returncode == 0, b.stderr
    after = rows_by_date(out, "sensor")
    assert after["2026-11-19"] == before["2026-11-19"]
    assert sum(rows_by_date(out, "quarantine").values()) == 5


@pytest.mark.parametrize("text, line_no", [
    ("null\n{obj}\n", 1), ("  null\n{obj}\n", 1), ("nul\n{obj}\n", 1),
    ("{obj}\n null\n{obj}\n", 2), ("{obj}\n{obj}\nnull", 3)])
def test_a_json_lines_registry_with_a_null_line_is_refused_in_one_line(tmp_path, text, line_no):
    # pyarrow 25's JSON reader kills the process (SIGSEGV) on a first value
    # of `null`: the driver read the registry and died without a word. A
    # `null` further down became a row of nulls and a message about a
    # non-nullable column that named neither the file nor the line.
    reg = tmp_path / "registry.jsonl"
    reg.write_text(text.replace("{obj}", '{"pub_key": "k", "location": "8c1fb46622dd1ff"}'))
    r = hx("batch", "witness", f"--beacons={W}/beacons-*.jsonl.gz", f"--witnesses={W}/witnesses-*.jsonl",
           f"--registry={reg}", f"--out={tmp_path / 'out'}", "--quiet")
    assert r.returncode == 2, (r.returncode, r.stderr[-300:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot parse {reg}: line {line_no} is not a JSON object" in lines[0], lines[0]
    assert not (tmp_path / "out" / "witness").exists()


@pytest.mark.parametrize("entry", ["directory", "broken link"])
def test_a_glob_that_matches_a_directory_or_a_broken_link_is_refused_naming_it(tmp_path, entry):
    # Beam's glob skips both without a word: the batch run went ahead one
    # file short and its manifest's accounting still added up.
    land = tmp_path / "land"
    land.mkdir()
    shutil.copy(f"{W}/witnesses-0000.jsonl", land / "witnesses-0000.jsonl")
    odd = land / "witnesses-0001.jsonl"
    if entry == "directory":
        odd.mkdir()
    else:
        os.symlink(tmp_path / "gone.jsonl", odd)
    r = hx("batch", "witness", f"--beacons={W}/beacons-*.jsonl.gz", f"--witnesses={land}/witnesses-*.jsonl",
           f"--registry={W}/registry.csv", f"--out={tmp_path / 'out'}", "--quiet")
    assert r.returncode == 2, (r.returncode, r.stderr[-300:])
    lines = r.stderr.strip().splitlines()
    why = "is a directory" if entry == "directory" else f"is a broken symbolic link (to {tmp_path / 'gone.jsonl'})"
    assert lines == [f"error: --witnesses: {odd} {why}; remove it or narrow the glob {land}/witnesses-*.jsonl"], lines
    assert not (tmp_path / "out" / "witness").exists()


def test_buckets_hold_at_most_their_share_of_input_and_are_no_more_than_needed():
    """choose_buckets: every bucket gets ≤ BUCKET_INPUT_BYTES of input (a
    bucket's memory), an even count (2 workers finish together), with as few
    buckets as that allows, and never fewer than 2."""
    from pipelines.batch import BUCKET_INPUT_BYTES as B, choose_buckets
    for size in (0, 1, B - 1, B, B + 1, 11 * B - 7, 12 * B - 7, 55 * B + 3):
        n = choose_buckets(size)
        assert n >= 2 and n % 2 == 0 and size / n <= B
        assert n == 2 or size / (n - 2) >= B
