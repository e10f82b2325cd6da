"""The benchmark harness: modes run in interleaved rounds, and each mode's
summary is its median run with the worst peak memory of any run."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

from measure import fresh_page_cost, round_robin, summarize  # noqa: E402


def _fake_run(wall: float, rss: float) -> dict:
    return {"wall_s": wall, "peak_rss_total_mb": rss, "peak_rss_max_proc_mb": rss, "peak_rss_per_proc_mb": [rss]}


def test_round_robin_interleaves_modes_and_summarizes_each():
    order = []
    walls = {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 6.0, 4.0])}
    rss = {"a": iter([10, 30, 20]), "b": iter([1, 2, 3])}

    def mode(name):
        def once():
            order.append(name)
            return _fake_run(next(walls[name]), next(rss[name]))
        return once

    res = round_robin(3, {"a": mode("a"), "b": mode("b")})
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert res["a"]["wall_s"] == 2.0 and res["a"]["walls_s"] == [3.0, 1.0, 2.0]
    assert res["b"]["wall_s"] == 5.0 and res["b"]["walls_s"] == [5.0, 6.0, 4.0]
    assert res["a"]["peak_rss_total_mb"] == 30  # the worst run's memory, not the median run's
    assert res["b"]["peak_rss_max_proc_mb"] == 3


def test_summarize_keeps_the_median_runs_other_fields():
    runs = [dict(_fake_run(w, 1), records=i) for i, w in enumerate([9.0, 7.0, 8.0])]
    assert summarize(runs)["records"] == 2


def test_fresh_page_cost_measures_cpu_per_gib(tmp_path):
    r = fresh_page_cost(mib=64, idle_s=0.0, root=str(tmp_path))
    assert set(r) == {"cold_cpu_s_per_gib", "warm_cpu_s_per_gib"}
    assert r["cold_cpu_s_per_gib"] > 0 and r["warm_cpu_s_per_gib"] > 0
    assert os.listdir(tmp_path) == []  # its files are gone
