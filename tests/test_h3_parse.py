"""H3 cells given as text: the vectorized hex path gives what int(s, 16)
gives, and text that is no 64-bit number is reported, never raised."""
import numpy as np
import pyarrow as pa

from transforms import h3util

CELL = 0x8A2A1072B59FFFF  # a valid res-10 cell


def _one_at_a_time(values):
    """The rule parse_cells documents, applied with Python's int()."""
    out = []
    for s in values:
        s = (s or "").strip()
        if not s:
            out.append(0)
            continue
        try:
            v = int(s, 16) if not s.isdigit() or len(s) == 15 else int(s)
            out.append(v if v < 1 << 64 else None)
        except ValueError:
            out.append(None)
    return out


def test_hex_text_parses_like_int():
    values = ["8a2a1072b59ffff", "8A2A1072B59FFFF", " 8a2a1072b59ffff\t", "08a2a1072b59ffff", "0x8a2a1072b59ffff",
              str(CELL), "123456789012345", "1234567890123456", "ffffffffffffffff", "8a2a1072b59fff", "", "  ", None,
              "zz2a1072b59ffff", "8a2a1072b59fffg"]
    cells, valid = h3util.parse_cells(pa.array(values))
    for v, want, got, ok in zip(values, _one_at_a_time(values), cells.tolist(), valid.tolist()):
        if want is None:
            assert not ok, v
        else:
            assert got == want, v
            assert ok == (want == 0 or want == CELL), v  # only these are real H3 cells


def test_text_wider_than_64_bits_is_invalid_not_an_error():
    cells, valid = h3util.parse_cells(pa.array(["8a2a1072b59ffff" * 2, "9" * 30, "8a2a1072b59ffff"]))
    assert valid.tolist() == [False, False, True]
    assert cells[2] == CELL


def test_non_ascii_and_sliced_input():
    cells, valid = h3util.parse_cells(pa.array(["é" * 15, "8a2a1072b59ffff", "ä2a1072b59ffff"]))
    assert cells.tolist()[1] == CELL and valid.tolist() == [False, True, False]
    cells, valid = h3util.parse_cells(pa.array(["junk", "8a2a1072b59ffff", "8A2A1072B59FFFF"]).slice(1))
    assert cells.tolist() == [CELL, CELL] and valid.all()


def test_centers_checked_matches_unchecked_for_valid_cells():
    cells = np.array([CELL, 0, CELL], dtype=np.uint64)
    a, b = h3util.centers(cells), h3util.centers(cells, checked=True)
    assert np.allclose(a[0], b[0], equal_nan=True) and np.allclose(a[1], b[1], equal_nan=True)
    assert np.isnan(a[0][1]) and not np.isnan(a[0][0])


def test_registry_keeps_the_first_row_of_a_duplicate_key(tmp_path):
    from transforms.witness.registry import load_registry
    p = tmp_path / "registry.csv"
    p.write_text("pub_key,location,gain\nA,8a2a1072b59ffff,10\nB,,20\nA,8a2a1072b58ffff,30\nC,zz,40\n")
    reg, problems = load_registry(str(p))
    assert reg.column("pub_key").to_pylist() == ["A", "B", "C"]
    assert reg.column("gain").to_pylist() == [10, 20, 40]
    assert reg.column("location").to_pylist() == [CELL, None, None]
    assert [q["problem"] for q in problems if q["row"] is None] == ["1 duplicate pub_key row(s); first kept"]
    assert any(q["row"] == 4 and "not an H3 cell" in q["problem"] for q in problems)
