"""Reference tables are loaded once per worker process (transforms/beam/witness.py
`_WithRefs` through Beam's `Shared`), however many tasks unpickle the DoFn."""
import math
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.utils.shared import Shared

from transforms.beam.witness import JoinWitnesses, VerifyBeacons
from transforms.witness.rules import BEACON_RULES, WITNESS_RULES


def _refs(tmp_path, name="registry.parquet", keys=("11a", "11b", "11c")):
    uri = str(tmp_path / name)
    pq.write_table(pa.table({"pub_key": list(keys)}), uri)
    return {"registry": uri, "deny": None, "entropy": None}


def _task_copy(fn):
    """What a DaskRunner task gets: a fresh unpickled DoFn, then setup()."""
    fn = pickle.loads(pickle.dumps(fn))
    fn.setup()
    return fn


def test_tasks_of_both_steps_share_one_copy_and_one_index(tmp_path):
    refs, shared = _refs(tmp_path), Shared()
    verify = VerifyBeacons(refs, BEACON_RULES.resolve({}), 0, shared)
    join = JoinWitnesses(refs, WITNESS_RULES.resolve({}), 0, shared)
    tasks = [_task_copy(verify), _task_copy(verify), _task_copy(join)]
    assert tasks[0]._refs() is tasks[1]._refs() is tasks[2]._refs()
    index = tasks[0]._registry_index()
    assert tasks[2]._registry_index() is index
    assert tasks[1]._ref("registry").column("pub_key").to_pylist() == ["11a", "11b", "11c"]


def test_other_refs_or_another_handle_load_their_own_copy(tmp_path):
    shared = Shared()
    a = _task_copy(VerifyBeacons(_refs(tmp_path), BEACON_RULES.resolve({}), 0, shared))
    held = a._refs()
    other = _refs(tmp_path, "other.parquet", keys=("22x",))
    b = _task_copy(VerifyBeacons(other, BEACON_RULES.resolve({}), 0, shared))
    assert b._ref("registry").column("pub_key").to_pylist() == ["22x"]
    c = _task_copy(VerifyBeacons(_refs(tmp_path), BEACON_RULES.resolve({}), 0, Shared()))
    assert c._refs() is not held
    assert c._ref("registry").column("pub_key").to_pylist() == ["11a", "11b", "11c"]


def test_batch_runs_stage_refs_as_arrow_ipc_and_workers_read_them_back_whole(tmp_path):
    """The driver stages a batch run's reference tables as Arrow IPC (streams
    still stage Parquet); a worker reads either back equal to what was staged."""
    from pipelines.batch import Stage
    from transforms.beam.witness import _load_ref
    reg = pa.table({"pub_key": ["11a", None, "11c"], "location": pa.array([1, 0, 3], pa.uint64()),
                    "lat": [1.5, float("nan"), -2.0]})
    stage = Stage(staging=str(tmp_path / "staging"), run_columns={}, now_ms=0, n_buckets=2, settings=None)
    uri = stage.stage_ref("registry", reg)
    assert uri.endswith("/refs/registry.arrow")
    pq_uri = str(tmp_path / "registry.parquet")
    pq.write_table(reg, pq_uri)
    for got in (_load_ref(uri), _load_ref(pq_uri)):
        assert got.schema == reg.schema
        assert got.drop_columns(["lat"]).equals(reg.drop_columns(["lat"]))
        lat = got.column("lat").to_numpy()
        assert lat[0] == 1.5 and math.isnan(lat[1]) and lat[2] == -2.0  # NaN (not asserted) survives
    assert _load_ref(None) is None
