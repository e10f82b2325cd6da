"""QoD scores of hand-computed station-days (WS2000 and WS1000)."""
import pytest

from tests.sensor_cases import D0, DAY, HOUR, registry, run, stream


def _hour(rows, h):
    return [r for r in rows if D0 + h * HOUR <= r["timestamp"] < D0 + (h + 1) * HOUR]


def test_ws2000_day_matches_hand_computation():
    # 6 h of context before the day + the day: 30 h × 20 packets (180 s).
    rows = stream("a", "WS2000", D0 - 6 * HOUR, D0 + 24 * HOUR)
    silent = set(map(id, _hour(rows, 5)))                      # hour 05: no packet at all
    rows = [r for r in rows if id(r) not in silent]
    _hour(rows, 10)[7]["temperature"] += 15                     # hour 10: one spike
    _hour(rows, 12)[3]["temperature"] += 15                     # hour 12: two spikes
    _hour(rows, 12)[10]["temperature"] -= 15
    gone = set(map(id, _hour(rows, 15)[4:7]))                   # hour 15: 3 packets lost (17 left)
    rows = [r for r in rows if id(r) not in gone]
    for r in _hour(rows, 18)[:4]:                               # hour 18: humidity missing 4 times
        r["humidity"] = None
    out, hourly, daily = run(rows, registry(("a", "WS2000")), days=[DAY])

    # Hourly s = (20 − faulty)/20, 1 when s > 0.9:
    #   hour 05: faulty 20 → 0 for every variable
    #   hour 10: temperature 19/20 = 0.95 > 0.9 → 1 (one spike is free)
    #   hour 12: temperature 18/20 = 0.9, not > 0.9 → 0.9
    #   hour 15: 3 missing slots → 17/20 = 0.85 for every variable
    #   hour 18: humidity 16/20 = 0.8
    h = {r["hour_start"].hour: r for r in hourly.to_pylist()}
    assert len(h) == 24
    assert h[5]["temperature_score"] == 0 and "NO_DATA" in h[5]["temperature_flags"]
    assert h[10]["temperature_score"] == 1 and h[10]["temperature_flags"] == ["SPIKE_INST"]
    assert h[12]["temperature_score"] == pytest.approx(0.9, abs=1e-12)
    assert h[12]["temperature_valid_pct"] == pytest.approx(90.0)
    assert h[15]["pressure_score"] == pytest.approx(0.85, abs=1e-12)
    assert h[15]["packets"] == 17 and "NO_DATA" in h[15]["pressure_flags"]   # 17 < 18 packets
    assert h[18]["humidity_score"] == pytest.approx(0.8, abs=1e-12)
    assert h[18]["humidity_completeness_pct"] == pytest.approx(80.0)

    # Daily per variable = mean of the 24 hours:
    temperature = (21 * 1 + 0 + 0.85 + 0.9) / 24               # ones: 24 − {5, 12, 15}
    humidity = (21 * 1 + 0 + 0.85 + 0.8) / 24                  # ones: 24 − {5, 15, 18}
    other = (22 * 1 + 0 + 0.85) / 24                           # pressure, wind ×2, illuminance, precipitation
    qod = (temperature + humidity + 5 * other) / 7             # = 159.65 / 168
    assert qod == pytest.approx(159.65 / 168, abs=1e-12)
    (d,) = daily.to_pylist()
    assert d["day"].isoformat() == "2026-03-10"
    assert d["temperature_score"] == pytest.approx(temperature, abs=1e-9)
    assert d["humidity_score"] == pytest.approx(humidity, abs=1e-9)
    assert d["wind_direction_score"] == pytest.approx(other, abs=1e-9)
    assert d["qod_score"] == pytest.approx(qod, abs=1e-9)
    assert d["hours_with_data"] == 23
    assert "temperature:SPIKE_INST" in d["flags"] and "pressure:NO_DATA" in d["flags"]
    # No GNSS in these packets: PoL fails, so the day is invalid for buyers.
    assert d["pol_flags"] == ["no_gnss"] and d["verdict"] == "invalid"
    assert d["reasons"] == ["pol_failed"]


def test_ws2000_context_day_is_scored_only_when_asked():
    rows = stream("a", "WS2000", D0 - 6 * HOUR, D0 + 24 * HOUR)
    _, hourly, daily = run(rows, registry(("a", "WS2000")))
    assert daily.num_rows == 2 and hourly.num_rows == 48
    first = daily.to_pylist()[0]
    assert first["qod_score"] == pytest.approx(6 / 24)         # 18 silent hours of the day before


def test_ws1000_day_with_missing_minute_and_silent_hours():
    # Only hours 00–03 report (16 s packets); minute 01:10 is silent; hours 04–23 are silent.
    rows = stream("b", "WS1000", D0, D0 + 4 * HOUR)
    rows = [r for r in rows if not (D0 + HOUR + 10 * 60_000 <= r["timestamp"] < D0 + HOUR + 11 * 60_000)]
    # Minute 02:30 reads pressure 0.6 hPa high: below the per-packet spike threshold (0.8)
    # but a jump of the minute mean (> 0.5) into and out of that minute: two faulty slots.
    for r in rows:
        if D0 + 2 * HOUR + 30 * 60_000 <= r["timestamp"] < D0 + 2 * HOUR + 31 * 60_000:
            r["pressure"] += 0.6
    out, hourly, daily = run(rows, registry(("b", "WS1000")), days=[DAY])
    assert set(out.column("verdict").to_pylist()) == {"valid"}
    h = {r["hour_start"].hour: r for r in hourly.to_pylist()}
    assert h[1]["temperature_score"] == pytest.approx(59 / 60)
    assert h[1]["wind_speed_score"] == 1.0       # 2-min slot 01:10–01:12 keeps 01:11's packets
    assert h[2]["pressure_score"] == pytest.approx(58 / 60)
    assert h[7]["temperature_score"] == 0.0 and "NO_DATA" in h[7]["temperature_flags"]
    one_min = (4 - 1 / 60) / 24                  # temperature, humidity, illuminance, precipitation
    pressure = (4 - 1 / 60 - 2 / 60) / 24
    wind = 4 / 24                                # wind speed and direction
    (d,) = daily.to_pylist()
    assert d["temperature_score"] == pytest.approx(one_min, abs=1e-9)
    assert d["pressure_score"] == pytest.approx(pressure, abs=1e-9)
    assert d["wind_speed_score"] == pytest.approx(wind, abs=1e-9)
    assert d["qod_score"] == pytest.approx((4 * one_min + pressure + 2 * wind) / 7, abs=1e-9)
    assert d["hours_with_data"] == 4


def test_ws1000_lonely_packets_score_without_dividing_by_zero():
    # One packet in an hour, nothing else all day.
    rows = stream("b", "WS1000", D0 + 3 * HOUR, D0 + 3 * HOUR + 1)
    _, hourly, daily = run(rows, registry(("b", "WS1000")), days=[DAY])
    (d,) = daily.to_pylist()
    assert d["temperature_score"] == pytest.approx((1 / 60) / 24)
    assert d["wind_speed_score"] == 0.0          # 1 of 7.5 expected packets < 25 %
    assert 0.0 <= d["qod_score"] <= 1.0
