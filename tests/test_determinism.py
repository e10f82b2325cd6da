"""Same inputs and --now → byte-identical Parquet and identical manifests
(except timings), whichever output root and whichever process wrote them."""
from __future__ import annotations

import os

from _sched import D1, NOW, cli, file_hashes, landing, manifests, run_inproc, write_config

VOLATILE = ("timings", "recovered")


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in VOLATILE}


def test_two_runs_are_byte_identical(tmp_path):
    base = str(tmp_path)
    landing(base)
    a = run_inproc(write_config(base, out=os.path.join(base, "a"), name="a.toml"))
    # the second run through the real CLI in its own process
    cfg_b = write_config(base, out=os.path.join(base, "b"), name="b.toml")
    r = cli(["run", "--config", cfg_b, "--date", D1, "--now", NOW])
    assert r.returncode == 0, r.stderr
    ha, hb = file_hashes(os.path.join(base, "a")), file_hashes(os.path.join(base, "b"))
    assert ha and ha == hb
    assert len(ha) == sum(1 for o in a.manifest["outputs"])
    ma, mb = manifests(os.path.join(base, "a")), manifests(os.path.join(base, "b"))
    assert list(ma) == list(mb) and len(ma) == 1
    for k in ma:
        assert _strip(ma[k]) == _strip(mb[k])
        assert set(ma[k]["timings"]) == set(mb[k]["timings"])
