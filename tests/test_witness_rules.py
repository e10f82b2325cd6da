"""Every witness/beacon reason code, each triggered by a hand-built case,
plus the worked numbers from the reference."""
import math

import h3
import numpy as np
import pytest

from tests.witness_cases import NOW, PAYLOAD, T0, beacon, key, run, witness
from transforms import h3util
from transforms.witness.rules import BEACON_RULES, WITNESS_RULES, all_reasons
from transforms.witness.verify import free_space_ceiling_dbm


def reasons_of(rows, **match):
    for r in rows:
        if all(r[k] == v for k, v in match.items()):
            return r["reasons"]
    raise AssertionError(f"no row matching {match}")


# --- worked numbers ---------------------------------------------------------

def test_worked_distance_and_grid_distance():
    a = np.array([644459695463521437], dtype=np.uint64)
    b = np.array([644460986971331488], dtype=np.uint64)
    (la, lo), (lb, lob) = h3util.centers(a), h3util.centers(b)
    assert round(float(h3util.haversine_m(la, lo, lb, lob)[0])) == 14318
    assert h3util.grid_distance(h3util.parent(a, 11), h3util.parent(b, 11))[0] == 360


def test_parent_bit_arithmetic_matches_h3():
    c = h3.latlng_to_cell(51.5, -0.12, 15)
    for res in range(0, 15):
        assert int(h3util.parent(np.array([h3.str_to_int(c)], dtype=np.uint64), res)[0]) == \
            h3.str_to_int(h3.cell_to_parent(c, res))


def test_worked_free_space_ceiling():
    assert float(free_space_ceiling_dbm(12, 81, 83, 508, 867_900_024)) == pytest.approx(-57.334232963418515, abs=1e-12)


def test_clean_poc_is_valid(tmp_path):
    w, b = run(tmp_path, [beacon()], [witness(), witness(pub_key=key("C"), received_timestamp=T0 + 300)])
    assert [r["verdict"] for r in b] == ["valid"]
    assert b[0]["witness_count"] == 2
    assert all(r["verdict"] == "valid" and r["reasons"] == [] and r["selected"] for r in w)
    r = w[0]
    assert r["beacon_pub_key"] == key("A") and r["distance_m"] > 4000
    assert r["expected_max_rssi_dbm"] > r["signal"] / 10


# --- beacon rules -----------------------------------------------------------

@pytest.mark.parametrize("kw,code", [
    (dict(pub_key="112STRANGER"), "gateway_not_found"),
    (dict(pub_key=key("UNASSERTED")), "not_asserted"),
    (dict(pub_key=key("DENIED")), "denied"),
    (dict(pub_key=key("DATAONLY")), "invalid_capability"),
    (dict(timestamp=(T0 - 46 * 60_000) * 1_000_000), "stale"),
    (dict(received_timestamp=NOW + 61_000, timestamp=(NOW + 60_000) * 1_000_000), "future_timestamp"),
])
def test_beacon_rule(tmp_path, kw, code):
    w, b = run(tmp_path, [beacon(**kw)], [witness()])
    assert b[0]["verdict"] == "invalid" and code in b[0]["reasons"]
    # Its witnesses inherit the beacon's reason, attributed to the beaconer.
    if code != "future_timestamp":
        assert code in w[0]["reasons"] and w[0]["participant_side"] == "beaconer"


def test_irregular_interval_second_beacon_in_bucket(tmp_path):
    second = beacon(data="BBECAwQFBgcICQoLDA0ODxAREhM=", received_timestamp=T0 + 60_000,
                    timestamp=(T0 + 59_900) * 1_000_000)
    _, b = run(tmp_path, [beacon(), second], [witness()])
    assert reasons_of(b, data=PAYLOAD) == []
    assert reasons_of(b, data=second["data"]) == ["irregular_interval"]


def test_entropy_rules(tmp_path):
    ok = beacon(remote_entropy="E1")
    expired = beacon(pub_key=key("C"), data="CCECAwQFBgcICQoLDA0ODxAREhM=", remote_entropy="E0")
    unknown = beacon(pub_key=key("B"), data="DDECAwQFBgcICQoLDA0ODxAREhM=", remote_entropy="NOPE")
    _, b = run(tmp_path, [ok, expired, unknown], [], entropy_rows=[("E1", T0 - 60_000), ("E0", T0 - 181_000)])
    assert reasons_of(b, pub_key=key("A")) == []
    assert reasons_of(b, pub_key=key("C")) == ["entropy_expired"]
    assert reasons_of(b, pub_key=key("B")) == ["bad_entropy"]


# --- witness rules ----------------------------------------------------------

@pytest.mark.parametrize("kw,code", [
    (dict(data="not base64!"), "invalid_packet"),
    (dict(data="ZZZZAwQFBgcICQoLDA0ODxAREhM="), "beacon_not_found"),
    (dict(pub_key="112STRANGER"), "gateway_not_found"),
    (dict(pub_key=key("UNASSERTED")), "not_asserted"),
    (dict(pub_key=key("DENIED")), "denied"),
    (dict(pub_key=key("EDGE")), "denied_edge"),
    (dict(pub_key=key("A")), "self_witness"),
    (dict(received_timestamp=T0 + 4001), "too_late"),
    (dict(pub_key=key("DATAONLY")), "invalid_capability"),
    (dict(frequency=867_100_000 + 100_001), "invalid_frequency"),
    (dict(pub_key=key("US")), "invalid_region"),
    (dict(pub_key=key("NEAR")), "below_min_distance"),
    (dict(pub_key=key("FAR")), "max_distance_exceeded"),
    (dict(signal=-100), "bad_rssi"),
    (dict(timestamp=(T0 + 200 - 46 * 60_000) * 1_000_000), "stale"),
    (dict(received_timestamp=NOW + 61_000, timestamp=(NOW + 61_000) * 1_000_000), "future_timestamp"),
])
def test_witness_rule(tmp_path, kw, code):
    w, _ = run(tmp_path, [beacon()], [witness(**kw)])
    assert w[0]["verdict"] == "invalid"
    assert code in w[0]["reasons"], w[0]["reasons"]
    assert w[0]["selected"] is False


def test_too_late_when_a_witness_came_before_the_beacon(tmp_path):
    early = witness(pub_key=key("C"), received_timestamp=T0 - 500, timestamp=(T0 - 600) * 1_000_000)
    ok = witness(received_timestamp=T0 - 500 + 1500)
    late = witness(pub_key=key("EDGE"), received_timestamp=T0 - 500 + 1501)
    w, _ = run(tmp_path, [beacon()], [early, ok, late])
    assert reasons_of(w, pub_key=key("C")) == []
    assert reasons_of(w, pub_key=key("B")) == []
    assert "too_late" in reasons_of(w, pub_key=key("EDGE"))


def test_beacon_lag_boundary_4000_ms_passes(tmp_path):
    w, _ = run(tmp_path, [beacon()], [witness(received_timestamp=T0 + 4000)])
    assert w[0]["reasons"] == []


@pytest.mark.parametrize("f,ok", [(904_589_968, True), (904_599_968, True), (904_609_968, False)])
def test_worked_frequency_tolerance(tmp_path, f, ok):
    w, _ = run(tmp_path, [beacon(frequency=904_499_968)], [witness(frequency=f)])
    assert ("invalid_frequency" not in w[0]["reasons"]) is ok


def test_duplicate_first_received_wins(tmp_path):
    first = witness(received_timestamp=T0 + 300)
    again = witness(received_timestamp=T0 + 400, signal=-1190)
    w, _ = run(tmp_path, [beacon()], [again, first])
    assert reasons_of(w, received_timestamp=T0 + 300) == []
    assert reasons_of(w, received_timestamp=T0 + 400) == ["duplicate"]


def test_duplicates_are_per_witness_key_registered_or_not(tmp_path):
    """Twice the same key that the registry lacks is a duplicate the second
    time; two different unknown keys, or an unknown key beside a known one,
    are not."""
    from tests.witness_cases import key
    rows = [witness(pub_key=key("X1"), received_timestamp=T0 + 300),
            witness(pub_key=key("X1"), received_timestamp=T0 + 400),
            witness(pub_key=key("X2"), received_timestamp=T0 + 350),
            witness(received_timestamp=T0 + 320)]
    w, _ = run(tmp_path, [beacon()], rows)
    dup = {(r["pub_key"], r["received_timestamp"]): "duplicate" in r["reasons"] for r in w}
    assert dup == {(key("X1"), T0 + 300): False, (key("X1"), T0 + 400): True,
                   (key("X2"), T0 + 350): False, (key("B"), T0 + 320): False}
    assert all("gateway_not_found" in r["reasons"] for r in w if r["pub_key"] != key("B"))


def test_max_distance_uses_whole_kilometres(tmp_path):
    """d // 1000 > 100 fails: 100.x km passes, 101.x km fails."""
    from tests import witness_cases as wc
    lat2 = wc.LAT + 100_500 / 111_195  # ≈ 100.5 km north
    lat3 = wc.LAT + 101_500 / 111_195
    hs = dict(wc.HOTSPOTS)
    hs["K100"] = dict(cell=h3.latlng_to_cell(lat2, wc.LNG, 15), gain=40, region="EU868", full="true")
    hs["K101"] = dict(cell=h3.latlng_to_cell(lat3, wc.LNG, 15), gain=40, region="EU868", full="true")
    hs["A"] = dict(hs["A"], cell=h3.latlng_to_cell(wc.LAT, wc.LNG, 15))
    w, _ = run(tmp_path, [beacon()], [witness(pub_key=key("K100"), signal=-1400),
                                      witness(pub_key=key("K101"), signal=-1400)], hotspots=hs)
    d100 = [r for r in w if r["pub_key"] == key("K100")][0]
    d101 = [r for r in w if r["pub_key"] == key("K101")][0]
    assert 100_000 <= d100["distance_m"] < 101_000 and "max_distance_exceeded" not in d100["reasons"]
    assert 101_000 <= d101["distance_m"] < 102_000 and "max_distance_exceeded" in d101["reasons"]


def test_rssi_has_no_margin(tmp_path):
    w, _ = run(tmp_path, [beacon()], [witness()])
    ceiling = w[0]["expected_max_rssi_dbm"]
    just_over = math.floor(ceiling * 10) + 1   # ddBm strictly above the ceiling
    just_under = math.floor(ceiling * 10)
    w2, _ = run(tmp_path, [beacon()], [witness(signal=just_over), witness(pub_key=key("C"), signal=just_under)])
    assert "bad_rssi" in reasons_of(w2, pub_key=key("B"))
    # C is farther away; its own ceiling is lower, so compare against its own value.
    c = [r for r in w2 if r["pub_key"] == key("C")][0]
    assert ("bad_rssi" in c["reasons"]) == (c["signal"] / 10 > c["expected_max_rssi_dbm"])


def test_first_14_valid_witnesses_are_selected(tmp_path):
    import tests.witness_cases as wc
    hs = dict(wc.HOTSPOTS)
    ws = []
    for i in range(16):
        name = f"W{i:02d}"
        hs[name] = dict(cell=wc.cell(east_m=3000 + 300 * i), gain=40, region="EU868", full="true")
        ws.append(witness(pub_key=key(name), received_timestamp=T0 + 100 + i))
    w, _ = run(tmp_path, [beacon()], ws, hotspots=hs)
    assert all(r["verdict"] == "valid" for r in w)
    sel = sorted((r["received_timestamp"], r["selected"]) for r in w)
    assert [s for _, s in sel] == [True] * 14 + [False] * 2


def test_every_reason_code_is_covered_by_this_file():
    import pathlib
    text = pathlib.Path(__file__).read_text()
    missing = [c for c in all_reasons() if f'"{c}"' not in text]
    assert not missing, missing


def test_constants_override_changes_version_and_behaviour(tmp_path):
    w, _ = run(tmp_path, [beacon()], [witness(received_timestamp=T0 + 3000)],
               overrides={"witness": {"beacon_lag_ms": 2000}})
    assert "too_late" in w[0]["reasons"]
    v = WITNESS_RULES.resolve({"beacon_lag_ms": 2000}).version
    assert v.startswith(WITNESS_RULES.version + "+") and v != WITNESS_RULES.version
    with pytest.raises(ValueError, match="no constant"):
        BEACON_RULES.resolve({"no_such_constant": 1})


def test_beaconer_region_comes_from_the_registry(tmp_path):
    hotspots = {"US": {"cell": "", "gain": 40, "region": "US915", "full": "true"},
                "A": {"cell": "", "gain": 80, "region": "EU868", "full": "true"},
                "NOREGION": {"cell": "", "gain": 40, "region": "", "full": "true"}}
    rows = [beacon(pub_key=key("US")), beacon(pub_key="112STRANGER"), beacon(pub_key=key("A")),
            beacon(pub_key=key("NOREGION"))]
    _, b = run(tmp_path, rows, [], hotspots=hotspots)
    assert {r["pub_key"]: r["beaconer_region"] for r in b} == {
        key("US"): "US915", "112STRANGER": None, key("A"): "EU868", key("NOREGION"): None}


def test_edge_deny_needs_both_keys_of_one_edge(tmp_path):
    """Edges (A, EDGE) and (C, B): B witnessing A and EDGE witnessing C each
    match one key of each edge, and are not denied; the edges themselves are."""
    other = "AQIDBAUGBwgJCgsMDQ4PEBESExQ="
    beacons = [beacon(), beacon(pub_key=key("C"), data=other)]
    witnesses = [witness(), witness(pub_key=key("EDGE")),
                 witness(pub_key=key("EDGE"), data=other), witness(pub_key=key("B"), data=other)]
    w, _ = run(tmp_path, beacons, witnesses, deny_rows=[(key("A"), key("EDGE")), (key("C"), key("B"))])
    got = {(r["beacon_pub_key"], r["pub_key"]): "denied_edge" in r["reasons"] for r in w}
    assert got == {(key("A"), key("B")): False, (key("A"), key("EDGE")): True,
                   (key("C"), key("EDGE")): False, (key("C"), key("B")): True}
