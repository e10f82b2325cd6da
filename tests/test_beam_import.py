"""The lean Beam import (pipelines/beam_import.py), each case in a fresh
interpreter, since what it changes is what a process imports first:
Beam imports without pandas, MongoDB and BigQuery clients; pandas is
importable again afterwards unless hidden for good; a Beam import that fails
with them hidden is redone with everything present; and the `hexsieve batch`
command runs its pipeline end to end without ever importing pandas."""
import json
import os
import subprocess
import sys
import textwrap

from tests._sched import HEXSIEVE, NOW

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "witness")


def fresh(code: str) -> dict:
    """Run `code` in a new interpreter; it prints one JSON object last."""
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_beam_imports_without_the_optional_packages_and_they_import_afterwards():
    r = fresh("""
        import json, sys
        from pipelines import beam_import
        beam_import.install()
        import apache_beam as beam
        during = {m: m in sys.modules for m in ("pandas", "pymongo", "bson", "apache_beam.io.gcp.bigquery")}
        import pyarrow as pa
        import pandas
        df = pa.table({"a": [1, 2]}).to_pandas()
        print(json.dumps({"during": during, "beam_has_create": hasattr(beam, "Create"),
                          "to_pandas": df["a"].tolist(),
                          "finders_left": [type(f).__name__ for f in sys.meta_path
                                           if type(f).__module__ == "pipelines.beam_import"]}))
    """)
    assert r["during"] == {"pandas": False, "pymongo": False, "bson": False, "apache_beam.io.gcp.bigquery": False}
    assert r["beam_has_create"]
    assert r["to_pandas"] == [1, 2]
    assert r["finders_left"] == []


def test_hidden_for_good_pandas_stays_out_and_pyarrow_still_converts_python_values():
    r = fresh("""
        import json, sys
        from pipelines import beam_import
        beam_import.install(for_good=True)
        import apache_beam
        import pyarrow as pa, pyarrow.compute as pc
        a = pa.array([1, None, 3])                       # conversions that look for pandas
        filled = pc.coalesce(a, 0).to_pylist()
        t = pa.table({"s": ["x", "y"]})
        try:
            import pandas
            err = None
        except ModuleNotFoundError as e:
            err = str(e)
        print(json.dumps({"filled": filled, "rows": t.num_rows, "pandas_loaded": "pandas" in sys.modules,
                          "err": err}))
    """)
    assert r["filled"] == [1, 0, 3] and r["rows"] == 2
    assert r["pandas_loaded"] is False
    assert r["err"] and "pipelines.beam_import" in r["err"]


def test_a_beam_import_that_needs_a_hidden_module_is_redone_with_everything_present():
    # Hide one of Beam's own required modules: the lean import fails and must
    # fall back to a plain import that works, leaving nothing hidden.
    r = fresh("""
        import json, sys
        from pipelines import beam_import
        beam_import.OPTIONAL = beam_import.OPTIONAL + ("apache_beam.coders",)
        beam_import.install()
        import apache_beam as beam
        with beam.Pipeline() as p:
            _ = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x)
        import apache_beam.coders
        print(json.dumps({"coders": hasattr(apache_beam.coders, "BytesCoder"),
                          "pandas_importable": __import__("importlib").util.find_spec("pandas") is not None}))
    """)
    assert r == {"coders": True, "pandas_importable": True}


def _batch_in_fresh_process(out, via: str) -> dict:
    """`hexsieve batch witness` on the sample data in a new interpreter, via
    `cli.entry` (as the installed command: pandas hidden for good) or
    `cli.main` (as a library caller: hidden only while Beam imports)."""
    code = f"""
        import json, os, sys
        from pipelines import cli
        real_exit = os._exit
        def report(status):
            print(json.dumps({{"status": status, "pandas": "pandas" in sys.modules}}), flush=True)
            real_exit(status)
        os._exit = report
        cli.{via}(["batch", "witness", "--beacons", "{SAMPLE}/beacons-*.jsonl.gz",
                   "--witnesses", "{SAMPLE}/witnesses-*.jsonl", "--registry", "{SAMPLE}/registry.csv",
                   "--denylist", "{SAMPLE}/denylist.csv", "--entropy", "{SAMPLE}/entropy.jsonl",
                   "--out", "{out}", "--run-id", "lean", "--now", "{NOW}", "--quiet"])
        report(0)
    """
    return fresh(code)


def _data_files(out) -> dict:
    import hashlib
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for table in ("witness", "beacon", "quarantine") for p in sorted((out / table).rglob("*.parquet"))}


def test_batch_command_without_pandas_writes_the_same_bytes(tmp_path):
    lean, plain = tmp_path / "lean", tmp_path / "plain"
    assert _batch_in_fresh_process(lean, "entry") == {"status": 0, "pandas": False}
    # The library path imports pandas later (pyarrow's first conversion of
    # Python values), so the two runs differ in exactly that.
    assert _batch_in_fresh_process(plain, "main") == {"status": 0, "pandas": True}
    for out in (lean, plain):
        assert json.loads((out / "_runs" / "lean.json").read_text())["accounting"]["ok"] is True
    files = _data_files(lean)
    assert len(files) >= 3
    assert files == _data_files(plain)
