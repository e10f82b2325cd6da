"""transforms.order.lexsort and the duplicate check built on it give exactly
the orders `np.lexsort` gives, on the fast (packed) path and on the fallback."""
import numpy as np
import pytest

from transforms.order import lexsort
from transforms.witness.verify import _group_first


def _keys(rng, n, kind):
    if kind == "small":
        return rng.integers(-5, 5, n)
    if kind == "uint16":
        return rng.integers(0, 3, n).astype(np.uint16)
    if kind == "bool":
        return rng.random(n) < 0.5
    if kind == "wide":  # too wide to pack with anything else: the fallback
        return rng.integers(-2**62, 2**62, n)
    if kind == "uint64":
        return rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
    if kind == "constant":
        return np.full(n, int(rng.integers(-10, 10)), np.int32)
    return rng.integers(1_795_000_000_000, 1_795_086_400_000, n)  # a day of ms timestamps


KINDS = ["small", "uint16", "bool", "wide", "uint64", "constant", "time"]


@pytest.mark.parametrize("seed", range(4))
def test_lexsort_equals_numpy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(400):
        n = int(rng.integers(0, 300))
        keys = [_keys(rng, n, KINDS[int(rng.integers(len(KINDS)))]) for _ in range(int(rng.integers(1, 5)))]
        np.testing.assert_array_equal(lexsort(keys), np.lexsort(keys))


def test_ties_keep_row_order_on_the_packed_path():
    k = np.array([2, 1, 2, 1, 1, 0])
    assert lexsort((k,)).tolist() == [5, 1, 3, 4, 0, 2]


def test_non_integer_keys_fall_back():
    f = np.array([0.5, -1.0, 0.5, 2.0])
    s = np.array(["b", "a", "a", "c"])
    np.testing.assert_array_equal(lexsort((f, s)), np.lexsort((f, s)))


def _group_first_by_definition(group, key, *sort_keys):
    n = len(group)
    order = np.lexsort(tuple(reversed(sort_keys)) + (key, group))
    g, k = group[order], key[order]
    later = np.zeros(n, dtype=bool)
    later[1:] = (g[1:] == g[:-1]) & (k[1:] == k[:-1])
    out = np.zeros(n, dtype=bool)
    out[order] = later
    return out


@pytest.mark.parametrize("seed", range(3))
def test_group_first_equals_full_ordering(seed):
    rng = np.random.default_rng(seed)
    for _ in range(500):
        n = int(rng.integers(0, 200))
        group = rng.integers(-1, int(rng.integers(1, 20)), n)
        key = rng.integers(0, int(rng.integers(1, 30)), n)
        sort_keys = [_keys(rng, n, "time" if j == 0 else "small") for j in range(int(rng.integers(0, 3)))]
        np.testing.assert_array_equal(_group_first(group, key, *sort_keys),
                                      _group_first_by_definition(group, key, *sort_keys))


def test_group_first_marks_all_but_the_earliest_repeat():
    group = np.array([7, 7, 7, 3, 7])
    key = np.array([1, 1, 2, 1, 1])
    received = np.array([30, 10, 5, 1, 10])
    # (7, 1) rows: received 30, 10, 10 → the first 10 (row 1) is kept.
    assert _group_first(group, key, received).tolist() == [True, False, False, False, True]
