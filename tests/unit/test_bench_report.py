"""The benchmark's verdicts and table, from results as a run leaves them."""

from __future__ import annotations

from bench.report import write_table
from bench.results import Latency, Results, judge


def _end_to_end(ratio: float) -> Results:
    results = Results(started_at="2026-11-24T00:00:00+00:00", machine="2 cores", settings={})
    stage = {"n": 10, "p50_ms": 100.0, "p95_ms": 200.0, "p99_ms": 300.0}
    results.end_to_end = {
        "registrations": 10,
        "in_flight": 64,
        "ours_per_second": 8.0,
        "bare_per_second": 10.0,
        "ratio": ratio,
        "ratio_by_round": [0.781, 0.817],
        "ours_stages": {"RegisterUser": stage, "until the email": stage, "VerifyEmail": stage},
        "ours_cpu_ms_per_registration": {"temporal": 60.0, "worker": 40.0},
        "bare_cpu_ms_per_registration": {"temporal": 65.0, "bare-worker": 20.0},
    }
    return results


def test_a_ratio_just_under_the_target_misses_it() -> None:
    results = _end_to_end(0.799)
    judge(results)
    assert results.targets["end-to-end throughput >= 0.8 x bare"]["holds"] is False
    results = _end_to_end(0.8)
    judge(results)
    assert results.targets["end-to-end throughput >= 0.8 x bare"]["holds"] is True


def test_the_table_shows_each_round_where_one_registration_waits_and_its_cpu() -> None:
    results = _end_to_end(0.799)
    judge(results)
    table = write_table(results)
    assert "ratio 0.799 (by round: 0.781, 0.817)" in table
    assert "until the email       100.0 /    200.0" in table
    assert "ours: 100.0 (temporal 60.0, worker 40.0)" in table
    assert "MISSES  end-to-end throughput >= 0.8 x bare" in table


def test_latency_percentiles_come_from_the_sorted_calls() -> None:
    latency = Latency.of([0.3, 0.1, 0.2, 0.4])
    assert (latency.n, latency.p50_ms, latency.p99_ms) == (4, 300.0, 400.0)
