"""Every packet reason code, each triggered by a small hand-built case, plus a clean stream."""
from tests.sensor_cases import (D0, HOUR, NOW, flags_at, reasons_at, registry, run, smooth,
                                stream)
from transforms.sensor.rules import SENSOR_RULES, Reason, all_reasons

REG = registry(("a", "WS2000"), ("b", "WS1000"))
S2 = 180_000


def codes(out):
    return {c for r in out.column("reasons").to_pylist() for c in r}


def test_clean_stream_passes():
    rows = stream("a", "WS2000", D0, D0 + 3 * HOUR) + stream("b", "WS1000", D0, D0 + HOUR)
    out, hourly, daily = run(rows, REG)
    assert set(out.column("verdict").to_pylist()) == {"valid"}
    assert all(r == [] for r in out.column("temperature_flags").to_pylist())


def test_every_packet_code_has_a_rule():
    assert set(SENSOR_RULES.reasons()) == set(all_reasons()) - {Reason.QOD_BELOW_MIN, Reason.POL_FAILED}


def test_station_not_found_and_model_mismatch():
    rows = [{"station_id": "ghost", "model": "WS2000", "timestamp": D0, **smooth(0)},
            {"station_id": "a", "model": "WS1000", "timestamp": D0, **smooth(0)},
            {"station_id": "a", "model": "XYZ", "timestamp": D0 + S2, **smooth(1)},
            {"station_id": "a", "model": None, "timestamp": D0 + 2 * S2, **smooth(2)}]
    out, _, _ = run(rows, REG)
    assert reasons_at(out, "ghost", D0) == [["station_not_found"]]
    assert reasons_at(out, "a", D0) == [["model_mismatch"]]
    assert reasons_at(out, "a", D0 + S2) == [["model_mismatch"]]
    assert reasons_at(out, "a", D0 + 2 * S2) == [[]]     # null model: the registry's applies


def test_duplicate_reading_and_timestamp_order():
    base = stream("a", "WS2000", D0, D0 + 4 * S2)
    dup = dict(base[1])                                   # the same packet again
    conflict = dict(base[2], temperature=21.7)            # same time, different values
    late = dict(base[0], timestamp=D0 - S2)               # arrives after later packets (Δt < 0)
    out, _, _ = run(base + [dup, conflict, late], REG)
    assert sorted(map(tuple, reasons_at(out, "a", D0 + S2))) == [(), ("duplicate_reading",)]
    assert sorted(map(tuple, reasons_at(out, "a", D0 + 2 * S2))) == [(), ("timestamp_order",)]
    assert reasons_at(out, "a", D0 - S2) == [["timestamp_order"]]


def test_future_and_stale():
    rows = [{"station_id": "a", "model": "WS2000", "timestamp": NOW + 61_000, **smooth(0)},
            {"station_id": "a", "model": "WS2000", "timestamp": NOW - 31 * 86_400_000, **smooth(1)},
            {"station_id": "a", "model": "WS2000", "timestamp": NOW + 59_000, **smooth(2)}]
    out, _, _ = run(rows, REG)
    assert reasons_at(out, "a", NOW + 61_000) == [["future_timestamp"]]
    assert reasons_at(out, "a", NOW - 31 * 86_400_000) == [["stale"]]
    assert reasons_at(out, "a", NOW + 59_000) == [[]]
    out, _, _ = run(rows, REG, stale_after_ms=40 * 86_400_000)
    assert reasons_at(out, "a", NOW - 31 * 86_400_000) == [[]]


def test_out_of_bounds_per_model():
    rows = [{"station_id": "a", "model": "WS2000", "timestamp": D0, **smooth(0), "temperature": 70.0},
            {"station_id": "b", "model": "WS1000", "timestamp": D0, **smooth(0), "temperature": 70.0},
            {"station_id": "b", "model": "WS1000", "timestamp": D0 + 16_000, **smooth(1), "humidity": 5.0},
            {"station_id": "a", "model": "WS2000", "timestamp": D0 + S2, **smooth(1), "wind_direction": 360.0}]
    out, _, _ = run(rows, REG)
    assert "out_of_bounds" not in flags_at(out, "temperature", "a", D0)  # WS2000 allows 80 °C
    assert flags_at(out, "temperature", "b", D0) == ["out_of_bounds"]
    assert flags_at(out, "humidity", "b", D0 + 16_000) == ["out_of_bounds"]
    assert flags_at(out, "wind_direction", "a", D0 + S2) == ["out_of_bounds"]
    assert reasons_at(out, "b", D0) == [["out_of_bounds"]]


def test_spike_is_the_member_far_from_the_median():
    rows = stream("a", "WS2000", D0, D0 + 2 * HOUR)
    t = rows[30]["timestamp"]
    rows[30]["temperature"] += 15                               # > 9 °C jump, full 60-min window
    out, _, _ = run(rows, REG)
    assert flags_at(out, "temperature", "a", t) == ["spike"]
    assert flags_at(out, "temperature", "a", t - S2) == []
    assert flags_at(out, "temperature", "a", t + S2) == []
    assert flags_at(out, "humidity", "a", t) == []


def test_spike_persists_while_value_repeats():
    rows = stream("a", "WS2000", D0, D0 + 2 * HOUR)
    for i in (30, 31, 32):
        rows[i]["temperature"] = 40.0
    out, _, _ = run(rows, REG)
    ts = [rows[i]["timestamp"] for i in (30, 31, 32)]
    assert [flags_at(out, "temperature", "a", t) for t in ts] == [["spike"]] * 3


def test_unidentified_spike_without_median():
    rows = stream("a", "WS2000", D0, D0 + HOUR)
    rows[2]["pressure"] += 5                                    # only 3 packets in the window
    out, _, _ = run(rows, REG)
    got = [flags_at(out, "pressure", "a", rows[i]["timestamp"]) for i in (1, 2, 3, 4)]
    assert got == [["unidentified_spike"]] * 3 + [[]]


def test_constant_and_humid_exemption():
    rows = stream("a", "WS2000", D0, D0 + 3 * HOUR)
    for r in rows[:41]:                                         # 41 packets fill 123 min ≥ 120
        r["pressure"] = 1010.0
    out, _, _ = run(rows, REG)
    assert flags_at(out, "pressure", "a", rows[0]["timestamp"]) == ["constant"]
    assert flags_at(out, "pressure", "a", rows[41]["timestamp"]) == []
    # 39 packets (117 min) are not enough.
    rows = stream("a", "WS2000", D0, D0 + 3 * HOUR)
    for r in rows[:39]:
        r["pressure"] = 1010.0
    out, _, _ = run(rows, REG)
    assert flags_at(out, "pressure", "a", rows[0]["timestamp"]) == []
    # Saturated air: flat temperature is legitimate.
    rows = stream("a", "WS2000", D0, D0 + 6 * HOUR, temperature=12.0, humidity=97.0)
    out, _, _ = run(rows, REG)
    assert flags_at(out, "temperature", "a", rows[0]["timestamp"]) == []
    assert flags_at(out, "humidity", "a", rows[0]["timestamp"]) == []
    rows = stream("a", "WS2000", D0, D0 + 6 * HOUR, temperature=12.0)
    out, _, _ = run(rows, REG)
    assert flags_at(out, "temperature", "a", rows[0]["timestamp"]) == ["constant"]


def test_long_constant():
    rows = stream("a", "WS2000", D0, D0 + 25 * HOUR, temperature=15.0)
    out, _, _ = run(rows, REG)
    assert flags_at(out, "temperature", "a", rows[0]["timestamp"]) == ["constant", "long_constant"]
    rows = stream("a", "WS2000", D0, D0 + 20 * HOUR, temperature=15.0)
    out, _, _ = run(rows, REG)
    assert flags_at(out, "temperature", "a", rows[0]["timestamp"]) == ["constant"]


def test_frozen_sensor():
    rows = stream("a", "WS2000", D0, D0 + 7 * HOUR, wind_speed=0.0)
    for r in rows:
        r["temperature"] -= 25                                  # median −5 °C
    out, _, _ = run(rows, REG)
    assert flags_at(out, "wind_speed", "a", rows[0]["timestamp"]) == ["frozen_sensor"]
    # Same stuck vane above freezing is a plain constant.
    rows = stream("a", "WS2000", D0, D0 + 7 * HOUR, wind_speed=0.0)
    out, _, _ = run(rows, REG)
    assert flags_at(out, "wind_speed", "a", rows[0]["timestamp"]) == ["constant"]


def test_precipitation_reset_and_rate():
    rows = stream("a", "WS2000", D0, D0 + 10 * S2)
    for r in rows[5:]:
        r["precipitation_accumulated"] = 0.0                    # counter reset
    rows[8]["precipitation_accumulated"] = 0.254               # a normal tip
    rows[9]["precipitation_accumulated"] = 100.0               # > 0.254 mm/s × 180 s
    out, _, _ = run(rows, REG)
    f = [flags_at(out, "precipitation", "a", r["timestamp"]) for r in rows]
    assert f[5] == ["precipitation_reset"]
    assert f[8] == []
    assert f[9] == ["precipitation_rate"]
    assert f[6] == [] and f[4] == []
    assert codes(out) == {"precipitation_reset", "precipitation_rate"}


def test_unknown_model_station_skips_model_checks():
    rows = [{"station_id": "ghost", "model": None, "timestamp": D0, **smooth(0), "temperature": 500.0}]
    out, hourly, daily = run(rows, REG)
    assert reasons_at(out, "ghost", D0) == [["station_not_found"]]
    assert hourly.num_rows == 0 and daily.num_rows == 0


def test_constants_override_changes_version():
    c = SENSOR_RULES.resolve({"ws2000_temperature_spike": 20})
    assert c.version != SENSOR_RULES.version
    rows = stream("a", "WS2000", D0, D0 + 2 * HOUR)
    rows[30]["temperature"] += 15
    out, _, _ = run(rows, REG, ws2000_temperature_spike=20)
    assert flags_at(out, "temperature", "a", rows[30]["timestamp"]) == []
