"""Figures, targets and verdicts: the printed table, the JSON file and the optional PNG plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.budget import BudgetRun, per_window
from bench.concurrency import ConcurrencyRun, MemoryRun
from bench.features import FeatureRun
from bench.turns import HistoryRun


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: with 200 samples p99 is the second-worst, never an interpolation."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Row:
    section: str
    figure: str
    value: str
    target: str = ""
    verdict: str = ""  # PASS, MISS or "" (information only)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def history_rows(runs: list[HistoryRun], inprocess: list[HistoryRun], unpatched: list[HistoryRun]) -> list[Row]:
    """``runs``: the bot in its own process (the verdicts); ``inprocess``: next to the stand-ins."""
    rows: list[Row] = []
    p50s = {}
    for run in runs:
        n, added = run.stored_turns, [t.added_ms for t in run.warm]
        p50, p95, p99 = (percentile(added, q) for q in (50, 95, 99))
        p50s[n] = p50
        rows.append(
            Row(
                "1 added latency",
                f"{n} stored turns: p50/p95/p99",
                f"{p50:.2f} / {p95:.2f} / {p99:.2f} ms",
                "p50 <= 1 ms, p99 <= 5 ms",
                verdict(p50 <= 1 and p99 <= 5),
            )
        )
        to_request = percentile([t.to_request_ms for t in run.warm], 50)
        after = [t.after_model_ms for t in run.warm]
        rows.append(Row("1 added latency", f"{n}: message->model request p50", f"{to_request:.2f} ms"))
        rows.append(
            Row(
                "1 added latency",
                f"{n}: last chunk->complete answer p50/p99",
                f"{percentile(after, 50):.2f} / {percentile(after, 99):.2f} ms",
                "<= 50 ms",
                verdict(percentile(after, 99) <= 50),
            )
        )
        cold = [t.to_request_ms for t in run.cold]
        rows.append(Row("1 added latency", f"{n}: first turn after start (cold cache), message->request", _ms(cold)))
    for run in inprocess:
        added = [t.added_ms for t in run.warm]
        rows.append(
            Row(
                "1 added latency",
                f"{run.stored_turns}: in one process with the stand-ins (their CPU counted), p50/p99",
                f"{percentile(added, 50):.2f} / {percentile(added, 99):.2f} ms",
            )
        )
    for run in unpatched:
        value = percentile([t.to_request_ms for t in run.warm], 50)
        rows.append(
            Row(
                "1 added latency",
                f"{run.stored_turns}: message->request p50, SDK walk (no extra_body)",
                f"{value:.2f} ms",
            )
        )
    if len(p50s) > 1:
        sizes = sorted(p50s)
        ratio = p50s[sizes[-1]] / p50s[sizes[0]]
        rows.append(
            Row(
                "1 added latency",
                f"p50 at {sizes[-1]} / p50 at {sizes[0]}",
                f"{ratio:.2f}x",
                "<= 2x",
                verdict(ratio <= 2),
            )
        )
    return rows


def storage_rows(counted: list[HistoryRun]) -> list[Row]:
    rows = []
    for run in counted:
        trips = sorted({t.round_trips for t in run.warm})
        rows.append(
            Row(
                "2 redis",
                f"{run.stored_turns} stored turns: round trips per turn",
                "/".join(map(str, trips)),
                "exactly 2",
                verdict(trips == [2]),
            )
        )
    commands = sorted({round(run.commands_per_turn, 2) for run in counted})
    rows.append(
        Row(
            "2 redis",
            "commands per turn (INFO commandstats, scripts' calls included)",
            "/".join(map(str, commands)),
            "constant",
            verdict(len(commands) == 1),
        )
    )
    return rows


def concurrency_rows(slow: ConcurrencyRun, instant: ConcurrencyRun) -> list[Row]:
    """CPU throughput against a stand-in without rate limits (no verdict: Discord itself allows about
    50 requests a second, so these are what the bot's CPU could do, not what Discord would take)."""
    n = slow.conversations
    return [
        Row(
            "3 CPU throughput",
            f"{n} at once, {slow.model_latency_s:g} s model, no rate limit: wall ({slow.answered} answered)",
            f"{slow.wall_s:.2f} s",
        ),
        Row(
            "3 CPU throughput",
            f"{instant.conversations} at once, instant model, no rate limit ({instant.answered} answered)",
            f"{instant.turns_per_s:.0f} turns/s",
        ),
    ]


def budget_rows(runs: list[BudgetRun]) -> list[Row]:
    """Section 7: each size with the scheduler, without it (discord.py alone), and with the scheduler
    in two processes sharing the token's budget through Redis."""
    rows: list[Row] = []
    largest = max(r.conversations for r in runs)
    smallest = min(r.conversations for r in runs)
    for run in runs:
        n, on = run.conversations, run.scheduler
        processes = f", {run.processes} processes" if run.processes > 1 else ""
        label = f"{n} at once{processes}, scheduler {'on' if on else 'off'}"
        section = "7 request budget"
        rows.append(
            Row(
                section,
                f"{label}: 429s (global / per-route), busiest second",
                f"{run.global_429s} / {run.route_429s}, {run.peak_per_second} requests",
                "0" if on else "",
                verdict(run.four_twenty_nines == 0) if on else "",
            )
        )
        rows.append(
            Row(
                section,
                f"{label}: answers complete and stored once",
                f"{run.complete} of {n}",
                "all" if on else "",
                verdict(run.complete == n) if on else "",
            )
        )
        overloaded = on and n == largest and n > 1
        rows.append(
            Row(
                section,
                f"{label}: REST requests per turn",
                f"{run.requests_per_turn:.2f}",
                "<= 2" if overloaded else "",
                verdict(run.requests_per_turn <= 2) if overloaded else "",
            )
        )
        ratio = run.wall_s / run.lower_bound_s
        rows.append(
            Row(
                section,
                f"{label}: all complete (lower bound {run.lower_bound_s:.1f} s)",
                f"{run.wall_s:.1f} s ({ratio:.2f}x)",
                "<= 1.1x" if overloaded else "",
                verdict(ratio <= 1.1 and run.complete == n) if overloaded else "",
            )
        )
        rows.append(
            Row(
                section,
                f"{label}: first text p50/p99 (message posted -> first bot message)",
                f"{percentile(run.first_text_ms, 50) / 1000:.2f} / {percentile(run.first_text_ms, 99) / 1000:.2f} s",
            )
        )
        if on and n == smallest and run.processes == 1:
            first, closing = run.first_chunk_ms, run.closing_ms
            ok = percentile(first, 99) <= 50 and percentile(closing, 99) <= 50
            rows.append(
                Row(
                    section,
                    f"{label}: model's first chunk -> first text / last chunk -> closing text, p99",
                    f"{percentile(first, 99):.1f} / {percentile(closing, 99):.1f} ms",
                    "<= 50 ms",
                    verdict(ok),
                )
            )
    rows.append(
        Row("7 request budget", "budget: requests per second + burst (at most in any second)", f"{per_window():.0f}")
    )
    return rows


def first_text_rows(runs: list[HistoryRun]) -> list[Row]:
    first = [t.first_text_ms for run in runs for t in run.warm]
    p50, p99 = percentile(first, 50), percentile(first, 99)
    return [
        Row(
            "4 first text",
            "model's first chunk->first message p50/p99",
            f"{p50:.2f} / {p99:.2f} ms",
            "<= 50 ms",
            verdict(p99 <= 50),
        )
    ]


def memory_rows(runs: list[MemoryRun]) -> list[Row]:
    rows = [
        Row("5 memory", f"peak RSS, {r.stored_conversations} stored conversations", f"{r.peak_rss_mib:.1f} MiB")
        for r in runs
    ]
    peaks = [r.peak_rss_mib for r in runs]
    growth = max(peaks) - min(peaks)
    rows.append(
        Row("5 memory", "growth across those", f"{growth:.1f} MiB", "no growth (< 5 MiB noise)", verdict(growth < 5))
    )
    return rows


def token_rows(runs: list[HistoryRun]) -> list[Row]:
    rows = []
    for run in runs:
        rows.append(
            Row(
                "6 tokens",
                f"{run.stored_turns} stored turns: encode calls, chars, time per turn",
                f"{run.encode_calls_per_turn:.1f}, {run.encode_chars_per_turn:.0f}, {run.encode_ms_per_turn:.3f} ms",
            )
        )
        rows.append(
            Row(
                "6 tokens",
                f"{run.stored_turns}: same when the server sends no usage",
                f"{run.encode_calls_no_usage:.1f} calls, {run.encode_ms_no_usage:.3f} ms",
            )
        )
    if len(runs) > 1:
        small, large = runs[0], runs[-1]
        flat = large.encode_calls_per_turn <= small.encode_calls_per_turn and (
            large.encode_calls_no_usage <= small.encode_calls_no_usage
        )
        rows.append(
            Row(
                "6 tokens",
                f"calls per turn at {large.stored_turns} vs {small.stored_turns}",
                "same" if flat else "grows",
                "flat",
                verdict(flat),
            )
        )
    return rows


def feature_rows(run: FeatureRun) -> list[Row]:
    """Added latency with one image and with a summary, next to the same turn without (10 stored turns)."""
    plain = percentile([t.added_ms for t in run.plain], 50)
    rows = [Row("8 images, memory", "plain turn (same run): added p50/p99", _p50_p99(run.plain))]
    for name, timings in (
        (f"one image attached ({run.image_bytes / 1e6:.2f} MB JPEG, 1920x1080)", run.image_attached),
        ("one image kept from an earlier turn", run.image_kept),
        ("a 400-token summary present", run.summary),
    ):
        delta = percentile([t.added_ms for t in timings], 50) - plain
        rows.append(Row("8 images, memory", f"{name}: added p50/p99", f"{_p50_p99(timings)} ({delta:+.2f} ms p50)"))
    return rows


def _p50_p99(timings: Sequence[Any]) -> str:
    added = [t.added_ms for t in timings]
    return f"{percentile(added, 50):.2f} / {percentile(added, 99):.2f} ms"


def render(rows: list[Row]) -> str:
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("section", "figure", "value", "target")]
    lines = []
    for r in rows:
        cells = (r.section, r.figure, r.value, r.target)
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + f"  {r.verdict}".rstrip())
    return "\n".join(lines)


def write_json(path: Path, rows: list[Row], raw: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": [asdict(r) for r in rows], "raw": raw}, indent=1, default=_plain))


def _plain(value: Any) -> Any:
    return asdict(value) if hasattr(value, "__dataclass_fields__") else str(value)


def write_plot(path: Path, runs: list[HistoryRun], unpatched: list[HistoryRun]) -> bool:
    """Latency vs stored turns; False (and no file) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = [r.stored_turns for r in runs]
    fig, ax = plt.subplots(figsize=(7, 4))
    for q in (50, 95, 99):
        ax.plot(sizes, [percentile([t.added_ms for t in r.warm], q) for r in runs], marker="o", label=f"added p{q}")
    if unpatched:
        ax.plot(
            [r.stored_turns for r in unpatched],
            [percentile([t.to_request_ms for t in r.warm], 50) for r in unpatched],
            marker="x",
            linestyle="--",
            label="message->request p50, SDK param walk",
        )
    ax.set(xscale="log", yscale="log", xlabel="stored turns", ylabel="ms", title="Bot-added latency per turn")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _ms(values: Sequence[float]) -> str:
    return f"{percentile(values, 50):.2f} ms (p50 of {len(values)})"
