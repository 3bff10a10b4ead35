"""Runs one benchmark on a baseline checkout and on this one, back to back in one run, and
prints their CPU figures side by side (the machine is shared: CPU milliseconds per unit of
work are the figures that stay comparable; wall-clock ones move with the load, which is
recorded beside each).

    .venv/bin/python -m bench.side_by_side --baseline /work/wt/perf-base \\
        e2e_latency --rates 1,25,50,100 --realms 10

The baseline runs this checkout's ``bench/`` (copied to a temporary folder, so the same
load and the same measurements, with ``examples/``, the reference clients they use) against
its own code: its own ``.venv`` (made by
``scripts/bootstrap.sh`` there) imports its own ``aicollect``, ``services`` and ``gateway``.
Each side's result file is kept as ``bench/results/<name>.<side>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(python: Path, cwd: Path, results: Path, name: str, args: list[str]) -> dict[str, Any]:
    print(f"== {cwd}: {name} {' '.join(args)}", flush=True)
    subprocess.run([str(python), "-m", f"bench.{name}", *args], cwd=cwd, check=True)
    loaded: dict[str, Any] = json.loads((results / f"{name}.json").read_text())
    return loaded


def cpu_rows(result: dict[str, Any]) -> list[tuple[str, dict[str, float], str]]:
    """(what, CPU ms per unit by process, load average) for each measured phase."""
    if "steps" in result:  # e2e_latency
        return [
            (
                f"{s['rate_per_s']:g} payments/s: p99 {s['p99_ms']} ms, "
                f"{s.get('transactions_per_payment', '?')} transactions",
                s["cpu_ms_per_payment"],
                s.get("load_average", "?"),
            )
            for s in result["steps"]
        ]
    if "cpu_seconds_during_backfill" in result:  # backfill
        # CPU per overdue invoice over the backfill and the confirmation, the emulator left out.
        invoices = max(1, int(result["invoices_seen"]))
        return [
            (
                f"backfill: {result['invoices_per_second']:,.0f} invoices/s, "
                f"peak RSS {result['peak_rss_mb']} MB, {result['qbo_http_calls']} QBO calls; "
                "CPU ms per overdue invoice, backfill and confirmation",
                {
                    name: 1000 * seconds / invoices
                    for name, seconds in result["cpu_seconds_during_backfill"].items()
                    if name != "emulator"
                },
                "?",
            )
        ]
    ours = result["saturation"]["ours"]  # webhook_ingest
    return [
        (
            f"webhook at saturation: {ours['requests_per_s']}/s, p99 {ours['p99_ms']} ms "
            f"(bare aiohttp {result['saturation']['bare_aiohttp']['requests_per_s']}/s)",
            ours["cpu_ms_per_webhook"],
            ours.get("load_average", "?"),
        )
    ]


BACKFILL_TARGET_PER_S = 10_000  # issue 14


def _verdict(met: bool, figure: str, target: str) -> str:
    return f"  {'MET    ' if met else 'NOT MET'} {figure} (target {target})"


def targets(baseline: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """The hot path's targets, checked on this run's figures beside the baseline's."""
    if "steps" in ours:  # e2e_latency
        lines = []
        base_steps = {s["rate_per_s"]: s for s in baseline["steps"]}
        for step in ours["steps"]:
            rate, before = step["rate_per_s"], base_steps.get(step["rate_per_s"])
            total = step["cpu_ms_per_payment"].get("total", 0.0)
            if before and before["cpu_ms_per_payment"].get("total"):
                share = total / before["cpu_ms_per_payment"]["total"]
                lines.append(
                    _verdict(share <= 0.5, f"{rate:g}/s: CPU per payment {share:.2f}x", "<= 0.5x")
                )
            tx = step.get("transactions_per_payment")
            if tx is not None:
                lines.append(_verdict(tx <= 3, f"{rate:g}/s: {tx} transactions/payment", "<= 3"))
            if rate >= 100:
                lines.append(
                    _verdict(step["p99_ms"] < 1000, f"{rate:g}/s: p99 {step['p99_ms']} ms", "< 1 s")
                )
        return lines
    if "invoices_per_second" in ours:  # backfill
        rate = float(ours["invoices_per_second"])
        peak = max(float(ours["peak_rss_mb"][name]) for name in ("integration", "matcher"))
        return [
            _verdict(
                rate >= BACKFILL_TARGET_PER_S, f"backfill {rate:,.0f} invoices/s", ">= 10,000"
            ),
            _verdict(peak < 300, f"peak RSS {peak} MB", "< 300 MB"),
        ]
    ratio = ours["saturation"]["ratio"]  # webhook_ingest
    top = ours.get("highest_sustained_rate_per_s")
    under = ours.get("highest_rate_with_p99_under_50ms_per_s")
    return [
        _verdict(ratio >= 0.5, f"acknowledgement {ratio:.2f}x the bare handler", ">= 0.5x"),
        _verdict(
            top is not None and under == top,
            f"p99 < 50 ms up to {under}/s, highest sustained {top}/s",
            "p99 < 50 ms at the highest sustained rate",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the baseline checkout")
    parser.add_argument("benchmark", help="a module of bench/, e.g. e2e_latency")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    base = ns.baseline.resolve()
    with tempfile.TemporaryDirectory(prefix="aicollect-bench-") as tmp:
        shutil.copytree(HERE, Path(tmp) / "bench", ignore=shutil.ignore_patterns("results"))
        # The reference clients the benchmarks drive the stack with come along too.
        shutil.copytree(ROOT / "examples", Path(tmp) / "examples")
        baseline = run(
            base / ".venv" / "bin" / "python",
            Path(tmp),
            Path(tmp) / "bench" / "results",
            ns.benchmark,
            ns.args,
        )
    ours = run(Path(sys.executable), ROOT, HERE / "results", ns.benchmark, ns.args)
    (HERE / "results" / f"{ns.benchmark}.baseline.json").write_text(json.dumps(baseline, indent=2))
    (HERE / "results" / f"{ns.benchmark}.ours.json").write_text(json.dumps(ours, indent=2))
    print(f"\nCPU ms per unit, baseline ({base}) -> this checkout")
    for (what_b, cpu_b, load_b), (what_o, cpu_o, load_o) in zip(
        cpu_rows(baseline), cpu_rows(ours), strict=True
    ):
        print(f"  baseline: {what_b} (load {load_b})")
        print(f"  ours:     {what_o} (load {load_o})")
        for key in cpu_o:
            before, after = cpu_b.get(key, 0.0), cpu_o[key]
            ratio = f"{after / before:.2f}x" if before else "-"
            print(f"    {key:<12} {before:8.2f} -> {after:8.2f}  ({ratio})")
    print("\nTargets (issue 14), this checkout")
    for line in targets(baseline, ours):
        print(line)


if __name__ == "__main__":
    main()
