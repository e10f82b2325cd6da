"""Input files are spread over parallel workers by estimated cost, and every
file still reaches the reader exactly once (real DirectRunner)."""
import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from pipelines.runner import parallel_slots, pipeline_options
from transforms.beam.spread import SpreadFiles, balanced_slots, estimated_cost


def test_balanced_slots_puts_big_items_apart_and_evens_load():
    costs = [10, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    slots = balanced_slots(costs, 2)
    load = [sum(c for c, s in zip(costs, slots) if s == k) for k in range(2)]
    assert slots[0] != slots[1]
    assert abs(load[0] - load[1]) <= 1
    assert balanced_slots([], 3) == []


def test_compressed_files_weigh_more_per_byte():
    assert estimated_cost("a.jsonl.gz", 100) > estimated_cost("a.jsonl", 100)


def _spread(n_slots, by_partition):
    tasks = [("witness", f"w{i}.jsonl") for i in range(7)] + [("beacon", f"b{i}.jsonl.gz") for i in range(3)]
    sizes = [100 + i for i in range(10)]
    with beam.Pipeline(options=pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_threading"])) as p:
        out = p | SpreadFiles(tasks, sizes, n_slots, by_partition)
        assert_that(out, equal_to(tasks))


def test_every_file_read_once_per_slot_layout():
    _spread(2, False)
    _spread(0, False)
    _spread(3, True)


def test_slots_follow_the_runner():
    assert parallel_slots(pipeline_options([])) == (2, False)
    assert parallel_slots(pipeline_options(["--direct_num_workers=1"])) == (1, False)
    assert parallel_slots(pipeline_options(["--runner=dask", "--dask_npartitions=8"])) == (8, True)


def test_local_cluster_partitions_sized_from_its_worker_count_not_a_connection():
    # A local cluster's workers may still be starting when options are built:
    # the worker count travels as an option (4 partitions per worker, at most
    # one per file). The address is unreachable, so asking it would fall back
    # to this machine's CPU count instead of 5 workers.
    args = ["--runner=dask", "--dask_client_address=tcp://127.0.0.1:9", "--hexsieve_dask_workers=5"]
    assert parallel_slots(pipeline_options(args, n_tasks=40)) == (20, True)
    assert parallel_slots(pipeline_options(args, n_tasks=7)) == (7, True)


class _WhoReads(beam.DoFn):
    def process(self, task):
        import threading
        yield threading.get_ident(), task


def test_each_slot_is_read_by_its_own_worker():
    """With 2 DirectRunner workers, the files of slot 0 and those of slot 1
    each go to one worker thread, and the two are different threads."""
    tasks = [("witness", f"w{i}.jsonl") for i in range(6)] + [("beacon", f"b{i}.jsonl.gz") for i in range(2)]
    sizes = [100] * 6 + [40] * 2
    slots = balanced_slots([estimated_cost(u, s) for (_, u), s in zip(tasks, sizes)], 2)
    expected = sorted(sorted(t for t, k in zip(tasks, slots) if k == slot) for slot in (0, 1))

    def check(pairs):
        by_thread = {}
        for ident, task in pairs:
            by_thread.setdefault(ident, []).append(tuple(task))
        got = sorted(sorted(ts) for ts in by_thread.values())
        assert got == expected, got

    with beam.Pipeline(options=pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_threading"])) as p:
        out = p | SpreadFiles(tasks, sizes, 2) | beam.ParDo(_WhoReads())
        assert_that(out, check)
