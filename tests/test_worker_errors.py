"""A step that fails inside a worker (here: the disk fills while shards are
written) ends the run with one line that says what happened, on every runner:
Beam's local runner printed the worker's traceback (~130 lines, more in
`multi_processing` mode, where each worker printed its own) and logged it
again, then the CLI showed only "RuntimeError: Traceback (most recent call
last):"."""
import os
import subprocess
import sys

import pytest

from transforms.errors import one_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = os.path.join(ROOT, "sample_data", "witness")
MODES = {"threads": [],
         "processes": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
         "dask": ["--runner", "dask", "--dask-workers", "2"]}


def batch(out, extra=(), env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "batch", "witness",
                           f"--beacons={W}/beacons-*", f"--witnesses={W}/witnesses-*",
                           f"--registry={W}/registry.csv", f"--out={out}", "--now=2026-11-21T00:00:00Z",
                           "--quiet", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("mode", list(MODES))
def test_a_step_failing_in_a_worker_is_one_line_and_commits_nothing(tmp_path, mode):
    out = tmp_path / "out"
    r = batch(out, MODES[mode], env={"HEXSIEVE_TEST_ENOSPC": "/shuffle/"})  # fault point in fileio.write_bytes
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[:3000]
    assert lines[0].startswith("error: OSError: [Errno 28] No space left on device"), lines[0]
    assert "/shuffle/" in lines[0]  # which file
    if mode != "dask":
        assert "[while running 'ReadAndShard']" in lines[0]  # which step
    assert not (out / "witness").exists() and not (out / "_runs").exists()
    again = batch(out, MODES[mode])
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert (out / "witness").is_dir()


def test_debug_keeps_the_traceback(tmp_path):
    r = batch(tmp_path / "out", env={"HEXSIEVE_TEST_ENOSPC": "/shuffle/", "HEXSIEVE_DEBUG": "1"})
    assert r.returncode == 1
    assert "Traceback (most recent call last):" in r.stderr and "No space left on device" in r.stderr


def test_one_line_takes_the_last_error_line_of_an_embedded_traceback():
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    g()\n"
            "OSError: [Errno 28] No space left on device: '/o/a.arrow'\n\n"
            "During handling of the above exception, another exception occurred:\n\n"
            "Traceback (most recent call last):\n  File \"y.py\", line 2, in h\n"
            "RuntimeError: OSError: [Errno 28] No space left on device: '/o/a.arrow' [while running 'Read']")
    assert one_line(RuntimeError(text), plain=()) == \
        "OSError: [Errno 28] No space left on device: '/o/a.arrow' [while running 'Read']"
    assert one_line(ValueError("bad value\nmore"), plain=()) == "ValueError: bad value"
    assert one_line(KeyError("k"), plain=()) == "KeyError: 'k'"
