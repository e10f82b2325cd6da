"""Spread input files over a runner's parallel workers with balanced work.

The DirectRunner splits a stage's input statically: keys of a grouped
collection go round-robin to its N workers, whatever their size. With
`Reshuffle`'s random keys one worker could get most of the compressed files
and finish 1.8 s after the other (measured on the 2M-row benchmark). Here the
driver, which knows every file's size, packs files into N slots by descending
estimated cost (greedy longest-processing-time), and slot k is the k-th key,
so it lands on worker k. On the DaskRunner each Dask partition of `Create`
becomes a task, so the slots are the partitions themselves: one element per
slot, no shuffle at all (the random-key shuffle left one of 2 workers with 14
of 24 files). Other runners split work dynamically and get one slot per file.
"""
from __future__ import annotations

import heapq

import apache_beam as beam

# Reading a compressed file costs about 4× per stored byte what a plain file
# costs (2M-row benchmark: 0.055 s/MB for .gz beacons, 0.014 s/MB for JSONL).
COMPRESSED_COST = 4.0


def estimated_cost(uri: str, size: int) -> float:
    compressed = uri.endswith((".gz", ".gzip", ".bz2", ".zst", ".deflate"))
    return size * (COMPRESSED_COST if compressed else 1.0)


def balanced_slots(costs: list[float], n_slots: int) -> list[int]:
    """Slot of each item: the biggest items first, each to the least loaded slot."""
    n_slots = max(1, n_slots)
    heap = [(0.0, k) for k in range(n_slots)]
    slot = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, k = heapq.heappop(heap)
        slot[i] = k
        heapq.heappush(heap, (load + costs[i], k))
    return slot


def _values(kv):
    return kv[1]


def _identity(group):
    return group


class SpreadFiles(beam.PTransform):
    """tasks (kind, uri) with sizes → the same tasks, spread over `n_slots`
    workers (0 = one slot per file); `by_partition` for runners that make one
    task per `Create` partition (Dask)."""

    def __init__(self, tasks: list[tuple[str, str]], sizes: list[int], n_slots: int, by_partition: bool = False):
        super().__init__()
        self.tasks, self.sizes, self.n_slots, self.by_partition = tasks, sizes, n_slots, by_partition

    def expand(self, pbegin):
        if self.n_slots:
            slots = balanced_slots([estimated_cost(u, s) for (_, u), s in zip(self.tasks, self.sizes)], self.n_slots)
        else:
            slots = list(range(len(self.tasks)))
        if self.by_partition:
            # One Create element (so one Dask partition) per non-empty slot.
            groups = [[t for t, k in zip(self.tasks, slots) if k == slot] for slot in sorted(set(slots))]
            return (pbegin
                    | "ListFiles" >> beam.Create(groups)
                    | "Unpack" >> beam.FlatMap(_identity))
        # Slot keys first appear in order 0, 1, …, so round-robin over keys
        # sends slot k to worker k. No reshuffle in Create (its default for
        # more than one element): it would be a second grouping, by random
        # keys, before this one.
        keyed = sorted(zip(slots, self.tasks), key=lambda st: st[0])
        return (pbegin
                | "ListFiles" >> beam.Create(keyed, reshuffle=False)
                | "BySlot" >> beam.GroupByKey()
                | "Unpack" >> beam.FlatMap(_values))


def partition_salts(n_buckets: int, n_partitions: int) -> tuple[int, ...]:
    """Salts that put bucket i in Dask partition i mod n_partitions.

    The DaskRunner's GroupByKey is `Bag.groupby`, which sends a key to
    partition `int(tokenize(key), 16) % npartitions`, and a partition's keys
    are one task. With ~20 buckets over 8-16 partitions that hash left some
    tasks three to five buckets and others none: on the 2M-row benchmark one
    of 2 workers verified 17 of 22 gateway buckets, or joined 14 of 22
    payload buckets while the other sat idle for 2.5 s. For each bucket this
    picks the smallest salt s with tokenize((i, s)) ≡ i (mod n_partitions), so
    every partition gets ⌈n/P⌉ or ⌊n/P⌋ buckets, and any P dividing
    n_partitions is spread evenly too. Only placement changes: a different
    hash (another Dask version) spreads buckets randomly again, as before.

    Empty (no salting) when there are many buckets per partition, where
    random placement evens out and the search would cost more (4 µs a try,
    n_partitions tries per bucket).
    """
    if n_partitions < 2 or n_buckets > 4 * n_partitions:
        return ()
    from dask.base import tokenize
    salts = []
    for i in range(n_buckets):
        s = 0
        while int(tokenize((i, s)), 16) % n_partitions != i % n_partitions:
            s += 1
        salts.append(s)
    return tuple(salts)
