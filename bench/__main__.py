"""``python -m bench [--quick] [--out DIR]``: what the bot adds to each turn, how it scales with history
and with concurrent conversations. Prints a table with targets and verdicts, writes it as JSON (and a
PNG plot when matplotlib is installed) under ``bench/results/``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Never fetch tiktoken data: the bot is configured with download_encodings = false (bundled cl100k).
os.environ.setdefault("TIKTOKEN_CACHE_DIR", tempfile.mkdtemp(prefix="bench-tiktoken-"))

from bench import report
from bench.budget import budget_run
from bench.concurrency import concurrency_run, memory_run
from bench.features import feature_run
from bench.turns import history_run, process_run
from tests.standins.redis_embedded import embedded_redis

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Scale:
    sizes: tuple[int, ...]  # stored turns per conversation
    turns: int  # measured turns per size, bot in its own process (the headline latency)
    inprocess_turns: int  # turns per size with the bot in this process (token counts; comparison)
    unpatched_turns: int  # turns without the extra_body shortcut (the SDK walks 1,000 messages: slow)
    counted_turns: int  # turns through the round-trip-counting proxy
    conversations: int  # concurrency
    slow_model_s: float
    stored: tuple[int, ...]  # stored conversations for the memory runs
    memory_turns: int
    budget: tuple[int, ...] = ()  # conversations at once against Discord's real limits (section 7)
    feature_turns: int = 3  # turns of each kind in the images and long-memory run (section 8)


# Section 7's runs per size: (scheduler, bot processes): with the scheduler, without it (discord.py
# alone), and two processes (SHARD_COUNT=2) spending the one token's budget through Redis.
BUDGET_RUNS = ((True, 1), (False, 1), (True, 2))
FULL = Scale((10, 100, 1000), 200, 60, 30, 20, 1000, 1.0, (10, 1000, 10000), 50, (10, 100, 1000), 100)
QUICK = Scale((10, 100), 6, 6, 2, 3, 20, 0.2, (10, 100), 3, (10,))


async def run(scale: Scale, log: Any) -> tuple[list[report.Row], dict[str, Any], list[Any], list[Any]]:
    with embedded_redis("bench") as redis_url:
        runs, inprocess, unpatched, counted = [], [], [], []
        for size in scale.sizes:
            log(f"history: {size} stored turns")
            runs.append(await process_run(redis_url, size, scale.turns))
            inprocess.append(await history_run(redis_url, size, scale.inprocess_turns))
            unpatched.append(await history_run(redis_url, size, scale.unpatched_turns, workaround=False))
            counted.append(await history_run(redis_url, size, scale.counted_turns, count_round_trips=True))
        log(f"concurrency: {scale.conversations} conversations, {scale.slow_model_s} s model")
        slow = await concurrency_run(redis_url, scale.conversations, scale.slow_model_s)
        log(f"concurrency: {scale.conversations} conversations, instant model")
        instant = await concurrency_run(redis_url, scale.conversations, 0.0)
        memory = []
        for stored in scale.stored:
            log(f"memory: {stored} stored conversations")
            memory.append(await memory_run(redis_url, stored, scale.memory_turns))
        budget = []
        for conversations in scale.budget:
            for scheduler, processes in BUDGET_RUNS:
                where = f"{processes} processes, " if processes > 1 else ""
                log(f"request budget: {conversations} at once, {where}scheduler {'on' if scheduler else 'off'}")
                budget.append(await budget_run(redis_url, conversations, scheduler=scheduler, processes=processes))
        log(f"images and long memory: {scale.feature_turns} turns of each")
        features = await feature_run(redis_url, scale.feature_turns)
    rows = [
        *report.history_rows(runs, inprocess, unpatched),
        *report.storage_rows(counted),
        *report.concurrency_rows(slow, instant),
        *report.first_text_rows(runs),
        *report.memory_rows(memory),
        *report.token_rows(inprocess),
        *report.budget_rows(budget),
        *report.feature_rows(features),
    ]
    raw = {"scale": scale, "history": runs, "inprocess": inprocess, "unpatched": unpatched, "counted": counted}
    raw["slow"] = slow
    raw |= {"instant": instant, "memory": memory, "budget": budget, "features": features}
    return rows, raw, runs, unpatched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds): a smoke run, not figures")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and PNG (bench/results)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    scale = QUICK if args.quick else FULL
    began = time.monotonic()
    rows, raw, runs, unpatched = asyncio.run(run(scale, lambda text: print(f"... {text}", flush=True)))
    print(report.render(rows))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"bench-{'quick-' if args.quick else ''}{stamp}"
    report.write_json(args.out / f"{name}.json", rows, raw)
    plotted = report.write_plot(args.out / f"{name}.png", runs, unpatched)
    print(f"\nwrote {args.out / name}.json" + (" and .png" if plotted else " (no PNG: matplotlib not installed)"))
    print(f"took {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
