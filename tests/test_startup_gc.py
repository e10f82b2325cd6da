"""The collector pause around start-up (pipelines/startup_gc.py): objects made
while paused are frozen only when start-up succeeds, the collector comes back
on either way, and a batch command run in-process leaves nothing frozen, so a
process that runs many jobs can still collect each one's objects."""
import gc
import os

import pytest
from click.testing import CliRunner

from pipelines import cli_batch, startup_gc

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample_data", "witness")


@pytest.fixture(autouse=True)
def _clean_gc():
    gc.unfreeze()
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable()


def test_paused_turns_the_collector_off_inside_and_freezes_on_success():
    with startup_gc.paused():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= len(made)
    with startup_gc.thawed():
        pass
    assert gc.get_freeze_count() == 0


def test_a_failed_start_up_freezes_nothing_and_restores_the_collector():
    with pytest.raises(ValueError):
        with startup_gc.paused():
            _ = [[i] for i in range(1000)]
            raise ValueError("bad registry")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_disabled_collector_stays_disabled():
    gc.disable()
    with startup_gc.paused():
        pass
    assert not gc.isenabled()


def _batch(out, witnesses):
    return CliRunner().invoke(cli_batch.batch, [
        "witness", "--beacons", f"{SAMPLE}/beacons-*.jsonl.gz", "--witnesses", witnesses,
        "--registry", f"{SAMPLE}/registry.csv", "--out", str(out), "--now", "2026-11-21T00:00:00Z", "--quiet"])


def test_a_batch_command_leaves_nothing_frozen(tmp_path):
    res = _batch(tmp_path / "ok", f"{SAMPLE}/witnesses-*.jsonl")
    assert res.exit_code == 0, res.output
    assert os.listdir(tmp_path / "ok" / "_runs")
    assert gc.isenabled() and gc.get_freeze_count() == 0
    res = _batch(tmp_path / "bad", str(tmp_path / "no-such-witnesses-*.jsonl"))  # fails inside the run
    assert res.exit_code != 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
