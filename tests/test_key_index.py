"""KeyIndex must give exactly what pc.index_in gives (first occurrence, −1
for absent or null keys), including when two keys share a hash."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.keys import KeyIndex


def _reference(probe, keys):
    return pc.fill_null(pc.index_in(probe, value_set=keys), -1).to_numpy(zero_copy_only=False)


def test_matches_index_in_on_random_keys_absent_and_null():
    rng = np.random.default_rng(7)
    keys = pa.array([f"11{rng.integers(1 << 62):x}{i}" for i in range(5000)])
    probe = pa.chunked_array([keys.take(pa.array(rng.integers(0, 5000, 3000))),
                              pa.array(["absent", None, "", "11zz"] * 10)])
    got = KeyIndex(keys).find(probe)
    assert (got == _reference(probe, keys)).all()
    assert (got[-40:] == -1).all()


def test_same_tail_different_keys_are_not_confused():
    # hash_strings looks at the length and last 16 bytes: these collide.
    keys = pa.array(["A" + "x" * 20, "B" + "x" * 20])
    idx = KeyIndex(keys)
    assert idx.ambiguous
    assert idx.find(pa.array(["B" + "x" * 20, "C" + "x" * 20, "A" + "x" * 20])).tolist() == [1, -1, 0]


def test_probe_sharing_a_hash_with_a_registry_key_is_absent():
    idx = KeyIndex(pa.array(["A" + "y" * 20, "short"]))
    assert not idx.ambiguous
    assert idx.find(pa.array(["Z" + "y" * 20, "short"])).tolist() == [-1, 1]


def test_empty_registry_and_empty_probe():
    assert KeyIndex(pa.array([], pa.string())).find(pa.array(["a"])).tolist() == [-1]
    assert KeyIndex(pa.array(["a"])).find(pa.array([], pa.string())).tolist() == []


def _hash_one(s: bytes) -> int:
    """hash_strings' definition for one key, byte by byte: shuffle buckets
    (and so which rows share an output file) depend on these values."""
    m, c, p = (1 << 64) - 1, 0x9E3779B97F4A7C15, 1099511628211
    h = (len(s) * c) & m
    for k in range(1, 17):
        h = ((h ^ (s[-k] if k <= len(s) else 0)) * p) & m
    h ^= h >> 31
    h = (h * c) & m
    return h ^ (h >> 29)


def test_hash_strings_follows_its_definition():
    from transforms.keys import hash_strings
    rng = np.random.default_rng(11)
    keys = ["", "a", "ab", "0123456789abcde", "0123456789abcdef", "0123456789abcdefg", "é" * 9,
            *("".join(chr(int(c)) for c in rng.integers(32, 900, int(n))) for n in rng.integers(0, 60, 300))]
    want = [_hash_one(k.encode()) for k in keys]
    assert hash_strings(pa.array(keys)).tolist() == want
    assert hash_strings(pa.array(keys, pa.large_string()).slice(3, 50)).tolist() == want[3:53]
    assert hash_strings(pa.chunked_array([pa.array(keys[:7]), pa.array(keys[7:])])).tolist() == want
    assert hash_strings(pa.array([None, "a"])).tolist() == [0, want[1]]


def test_keys_sharing_a_hash_anywhere_in_a_big_column_are_seen():
    """Collisions among thousands of keys (planted late in the column, and
    exact duplicates) switch the index to index_in, whose answers it gives."""
    rng = np.random.default_rng(5)
    base = [f"11{rng.integers(1 << 62):x}{i}" for i in range(20000)]
    for planted in (["Q" + "t" * 30, "R" + "t" * 30], [base[17], base[17]]):
        keys = pa.array(base[:15000] + [planted[0]] + base[15000:] + [planted[1]])
        idx = KeyIndex(keys)
        assert idx.ambiguous
        probe = pa.array(base[::7] + planted + ["absent", None])
        assert (idx.find(probe) == _reference(probe, keys)).all()
    assert not KeyIndex(pa.array(base)).ambiguous


def test_big_key_column_lookups_match_index_in():
    rng = np.random.default_rng(9)
    keys = pa.array([f"1{rng.integers(1 << 62):x}" for _ in range(50000)])
    probe = pa.chunked_array([keys.take(pa.array(rng.integers(0, len(keys), 20000))),
                              pa.array([f"1{rng.integers(1 << 62):x}" for _ in range(2000)] + [None, ""])])
    assert (KeyIndex(keys).find(probe) == _reference(probe, keys)).all()
