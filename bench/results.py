"""The benchmark's results: the figures of each phase and whether each target holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Latency:
    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @staticmethod
    def of(seconds: list[float]) -> Latency:
        ordered = sorted(seconds)
        if not ordered:  # every call failed: no figure, and no target met on it
            return Latency(0, float("nan"), float("nan"), float("nan"))

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

        return Latency(len(ordered), at(0.50), at(0.95), at(0.99))


@dataclass
class Results:
    started_at: str
    machine: str
    settings: dict[str, Any]
    argon2: Latency | None = None
    register_user: dict[int, Latency] = field(default_factory=dict)
    bare_start_workflow: dict[int, Latency] = field(default_factory=dict)
    end_to_end: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    lost_or_duplicated: list[str] = field(default_factory=list)
    # Calls that failed, by "phase: gRPC code"; a phase that could not finish, with its error.
    failed_calls: dict[str, int] = field(default_factory=dict)
    unfinished_phases: dict[str, str] = field(default_factory=dict)


def judge(results: Results) -> None:
    """Whether each benchmark target holds, with the figures it rests on."""
    if results.argon2 and 16 in results.register_user:
        limit = 2 * (results.bare_start_workflow[16].p99_ms + results.argon2.p99_ms)
        results.targets["RegisterUser p99 at 16 <= 2 x (bare start_workflow p99 + argon2)"] = {
            "value_ms": results.register_user[16].p99_ms,
            "limit_ms": round(limit, 1),
            "holds": results.register_user[16].p99_ms <= limit,
        }
    if results.end_to_end:
        results.targets["end-to-end throughput >= 0.8 x bare"] = {
            "value": results.end_to_end["ratio"],
            "limit": 0.8,
            "holds": results.end_to_end["ratio"] >= 0.8,
        }
    if results.pending:
        results.targets["worker RSS <= 300 MiB with the registrations pending"] = {
            "value_mib": results.pending["worker_rss_mib"],
            "limit_mib": 300,
            "holds": results.pending["worker_rss_mib"] <= 300,
        }
        p99 = results.pending["get_registration"]["p99_ms"]
        results.targets["GetRegistration p99 <= 50 ms while they wait"] = {
            "value_ms": p99,
            "limit_ms": 50,
            "holds": p99 <= 50,
        }
    results.targets["no registration lost or duplicated"] = {
        "value": len(results.lost_or_duplicated),
        "holds": not results.lost_or_duplicated,
    }
    results.targets["every phase finished"] = {
        "value": sorted(results.unfinished_phases) or "all",
        "holds": not results.unfinished_phases,
    }
