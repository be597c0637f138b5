"""The benchmark at tiny sizes, so it cannot rot: every section runs through the real code path and
reports what it must. Behaviour only (round trips, answers delivered, files written), never times."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import Scale, run

# Every section, with about ten bot processes started one after another: ~40 s on two cores, so the suite's
# 60 s default is too close when the machine is busy.
pytestmark = pytest.mark.timeout(180)

SMOKE = Scale(
    sizes=(10, 100),
    turns=3,
    inprocess_turns=2,
    unpatched_turns=1,
    counted_turns=2,
    conversations=5,
    slow_model_s=0.1,
    stored=(10, 50),
    memory_turns=2,
    budget=(3,),
    feature_turns=2,
)


def test_the_benchmark_runs_every_section_and_writes_its_table(tmp_path: Path) -> None:
    rows, raw, runs, _ = asyncio.run(run(SMOKE, lambda text: None))

    assert {row.section.split()[0] for row in rows} == {"1", "2", "3", "4", "5", "6", "7", "8"}
    assert all(row.verdict in ("PASS", "MISS", "") for row in rows)
    assert [r.stored_turns for r in runs] == [10, 100] and all(len(r.warm) == 3 for r in runs)
    assert [r.stored_turns for r in raw["inprocess"]] == [10, 100] and all(len(r.warm) == 2 for r in raw["inprocess"])
    # Images and long memory: every kind of turn answered.
    features = raw["features"]
    assert all(len(t) == 2 for t in (features.plain, features.image_attached, features.image_kept, features.summary))
    # Two Redis round trips per turn at every history size, and a constant number of commands.
    assert all(t.round_trips == 2 for r in raw["counted"] for t in r.warm)
    assert len({r.commands_per_turn for r in raw["counted"]}) == 1
    # Every conversation got its complete answer, in both concurrency runs.
    assert raw["slow"].answered == raw["instant"].answered == SMOKE.conversations
    # Stored turns are never tokenised again, with or without usage from the server.
    inprocess = raw["inprocess"]
    assert inprocess[0].encode_calls_per_turn == inprocess[1].encode_calls_per_turn
    assert inprocess[0].encode_calls_no_usage == inprocess[1].encode_calls_no_usage
    assert [m.stored_conversations for m in raw["memory"]] == [10, 50]
    # The request budget section, with the scheduler, without, and in two processes sharing the
    # budget: every answer complete, no 429.
    on, off, shared = raw["budget"]
    assert [(r.scheduler, r.processes) for r in (on, off, shared)] == [(True, 1), (False, 1), (True, 2)]
    for run_ in (on, shared):
        assert run_.complete == run_.conversations == 3 and run_.four_twenty_nines == 0
        assert run_.requests > 0 and len(run_.first_text_ms) == 3 and len(run_.first_chunk_ms) == 3
    assert all(m.peak_rss_mib > 0 for m in raw["memory"])

    out = tmp_path / "bench.json"
    report.write_json(out, rows, raw)
    assert len(json.loads(out.read_text())["rows"]) == len(rows)
    assert report.render(rows).count("\n") == len(rows) - 1
