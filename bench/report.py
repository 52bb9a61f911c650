"""The benchmark's results as a table for the terminal and a PNG chart."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt

from bench.results import Results


def write_table(results: Results) -> str:
    lines = [f"benchmark of {results.started_at} on {results.machine}", ""]
    if results.argon2:
        a = results.argon2
        lines.append(f"argon2id hash alone          p50 {a.p50_ms:7.1f}  p99 {a.p99_ms:7.1f} ms")
    if results.register_user:
        lines += ["", "latency (ms)   clients      p50      p95      p99"]
        for clients, ours in results.register_user.items():
            bare = results.bare_start_workflow[clients]
            for name, row in (("RegisterUser", ours), ("bare start", bare)):
                lines.append(
                    f"{name:14s} {clients:7d} {row.p50_ms:8.1f} {row.p95_ms:8.1f} {row.p99_ms:8.1f}"
                )
    if results.end_to_end:
        e = results.end_to_end
        lines += [
            "",
            f"end to end ({e['registrations']} registrations, {e['in_flight']} in flight)",
            f"  ours {e['ours_per_second']:7.1f}/s   bare {e['bare_per_second']:7.1f}/s   "
            f"ratio {e['ratio']:.3f} "
            f"(by round: {', '.join(f'{r:.3f}' for r in e['ratio_by_round'])})",
            "  ours, one registration (ms):  p50 / p95",
        ]
        for stage, row in e["ours_stages"].items():
            lines.append(f"    {stage:18s} {row['p50_ms']:8.1f} / {row['p95_ms']:8.1f}")
        lines.append("  CPU ms per registration, by process:")
        for side in ("ours", "bare"):
            used = e[f"{side}_cpu_ms_per_registration"]
            shares = ", ".join(f"{name} {ms}" for name, ms in used.items())
            lines.append(f"    {side}: {sum(used.values()):.1f} ({shares})")
    if results.pending:
        p = results.pending
        g = p["get_registration"]
        lines += [
            "",
            f"{p['registrations']} registrations pending ({p['running_registration_workflows']} "
            "registration workflows running)",
            f"  worker RSS {p['worker_rss_mib']} MiB, dev server RSS {p['dev_server_rss_mib']} MiB",
            f"  GetRegistration p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms",
        ]
    lines += ["", "targets"]
    for name, verdict in results.targets.items():
        figures = ", ".join(f"{k} {v}" for k, v in verdict.items() if k != "holds")
        lines.append(f"  {'holds ' if verdict['holds'] else 'MISSES'}  {name}  ({figures})")
    for problem in results.lost_or_duplicated:
        lines.append(f"  lost or duplicated: {problem}")
    return "\n".join(lines)


def write_chart(results: Results, path: Path) -> None:
    figure, (latency, throughput, memory) = plt.subplots(1, 3, figsize=(15, 4.5))
    clients = list(results.register_user)
    if clients:
        positions = range(len(clients))
        latency.bar(
            [x - 0.2 for x in positions],
            [results.register_user[c].p99_ms for c in clients],
            0.4,
            label="RegisterUser",
        )
        latency.bar(
            [x + 0.2 for x in positions],
            [results.bare_start_workflow[c].p99_ms for c in clients],
            0.4,
            label="bare start_workflow",
        )
        latency.set_xticks(list(positions), [str(c) for c in clients])
        latency.set_xlabel("concurrent clients")
        latency.set_ylabel("p99 latency (ms)")
        latency.legend()
    latency.set_title("Latency")
    if results.end_to_end:
        e = results.end_to_end
        throughput.bar(["ours", "bare"], [e["ours_per_second"], e["bare_per_second"]])
        throughput.set_ylabel("registrations per second")
        throughput.set_title(f"End to end (ratio {e['ratio']:.2f})")
    if results.pending:
        p = results.pending
        memory.bar(["worker", "dev server"], [p["worker_rss_mib"], p["dev_server_rss_mib"]])
        memory.axhline(300, color="red", linestyle="--", label="worker target 300 MiB")
        memory.set_ylabel("RSS (MiB)")
        memory.set_title(f"{p['registrations']} registrations pending")
        memory.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
