"""sorted_by_source must give exactly the rows and order of a full
(source_uri, source_record) sort, whether its shortcut applies or not."""
import random

import pyarrow as pa

from transforms.witness.verify import sorted_by_source, source_order


def _shard(uri, lines):
    return pa.table({"source_uri": pa.array([uri] * len(lines)), "source_record": pa.array(lines, pa.int64()),
                     "x": pa.array([f"{uri}:{n}" for n in lines])})


def _full_sort(t):
    return t.take(pa.array(source_order(t)))


def test_shards_in_any_order_come_out_sorted():
    shards = [_shard("b.jsonl", [1, 4, 9]), _shard("a.jsonl", [10, 11]), _shard("a.jsonl", [2, 3, 7]),
              _shard("c.jsonl", [5])]
    for seed in range(5):
        random.Random(seed).shuffle(shards)
        t = pa.concat_tables(shards)
        got = sorted_by_source(t)
        assert got.equals(_full_sort(t))
        assert got.column("x").to_pylist()[:3] == ["a.jsonl:2", "a.jsonl:3", "a.jsonl:7"]


def test_falls_back_when_shards_overlap_or_are_unordered_inside():
    overlapping = pa.concat_tables([_shard("a.jsonl", [1, 5]), _shard("a.jsonl", [3, 4])])
    assert sorted_by_source(overlapping).column("source_record").to_pylist() == [1, 3, 4, 5]
    unordered = _shard("a.jsonl", [3, 1, 2])
    assert sorted_by_source(unordered).equals(_full_sort(unordered))
    mixed = pa.table({"source_uri": ["b", "a", "b"], "source_record": pa.array([2, 1, 1], pa.int64()),
                      "x": ["b2", "a1", "b1"]})
    assert sorted_by_source(mixed).column("x").to_pylist() == ["a1", "b1", "b2"]


def test_empty_table_passes_through():
    t = _shard("a.jsonl", [])
    assert sorted_by_source(t).num_rows == 0
