"""Proof of Location: inside, k-ring, outside, no fix, relocation."""
import h3

from tests.sensor_cases import CLAIM, D0, DAY, HOUR, registry, run, stream

DMS = 86_400_000


def _days(first: int, last: int, cell_of_day) -> list[dict]:
    """A few packets per day, each with an accurate fix at the centre of cell_of_day(day)."""
    rows = []
    for d in range(first, last + 1):
        lat, lon = h3.cell_to_latlng(cell_of_day(d))
        for r in stream("a", "WS2000", D0 + d * DMS, D0 + d * DMS + HOUR):
            rows.append(dict(r, lat=lat, lon=lon, gnss_accuracy_m=5.0))
    return rows


def pol_of(daily, day_offset):
    for r in daily.to_pylist():
        if (r["day"].toordinal() - 719163) == DAY + day_offset:   # 719163 = ordinal of 1970-01-01
            return r["pol_score"], r["pol_flags"]
    raise AssertionError(f"no day {day_offset}")


def test_inside_claimed_cell():
    out, _, daily = run(_days(-1, 0, lambda d: CLAIM), registry(("a", "WS2000")), now=D0 + 2 * DMS)
    assert pol_of(daily, 0) == (1.0, [])
    assert pol_of(daily, -1) == (0.0, ["no_gnss"])            # no fixes the day before
    assert out.column("gnss_cell").to_pylist()[0] == int(CLAIM, 16)


def test_k_ring_tolerance():
    neighbour = sorted(h3.grid_ring(CLAIM, 1))[0]
    rows = _days(-1, 0, lambda d: neighbour)
    _, _, daily = run(rows, registry(("a", "WS2000")), now=D0 + 2 * DMS)
    assert pol_of(daily, 0) == (1.0, [])
    _, _, daily = run(rows, registry(("a", "WS2000")), now=D0 + 2 * DMS, pol_k_ring=0)
    assert pol_of(daily, 0) == (0.0, ["outside_claimed_cell"])


def test_outside_claimed_cell():
    far = sorted(h3.grid_ring(CLAIM, 5))[0]
    _, _, daily = run(_days(-1, 0, lambda d: far), registry(("a", "WS2000")), now=D0 + 2 * DMS)
    score, flags = pol_of(daily, 0)
    assert score == 0.0 and flags == ["outside_claimed_cell"]


def test_inaccurate_fixes_do_not_count():
    rows = [dict(r, gnss_accuracy_m=500.0) for r in _days(-1, 0, lambda d: CLAIM)]
    _, _, daily = run(rows, registry(("a", "WS2000")), now=D0 + 2 * DMS)
    assert pol_of(daily, 0) == (0.0, ["no_gnss"])


def test_relocation_costs_seven_days():
    # With a 2-ring tolerance, cells B and C both count as "at the claim", but they
    # are 4 rings apart: moving from B to C on day 3 is a relocation.
    ring = h3.grid_ring(CLAIM, 2)
    b = ring[0]
    c = max(ring, key=lambda x: h3.grid_distance(b, x))
    assert h3.grid_distance(b, c) == 4
    rows = _days(0, 12, lambda d: b if d < 3 else c)
    _, _, daily = run(rows, registry(("a", "WS2000")), now=D0 + 14 * DMS, pol_k_ring=2)
    got = {d: pol_of(daily, d) for d in range(1, 13)}
    assert got[1] == got[2] == got[3] == (1.0, [])
    for d in range(4, 11):                                     # days 4..10 = relocation day 3 + 1..7
        assert got[d] == (0.0, ["relocated"]), d
    assert got[11] == got[12] == (1.0, [])
