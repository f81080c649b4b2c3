"""bench/chaos.py --quick as CI runs it: every scenario, on servers of its own; no duplicate, no lost row. It runs in
the background from the start of the session (tests/chaos_background.py); the test waits for it."""

from __future__ import annotations

import json

import pytest

from tests.chaos_background import TIMEOUT_SECONDS, ChaosRun


@pytest.mark.slow
def test_it_loses_and_duplicates_nothing_in_any_chaos_scenario(chaos_run: ChaosRun) -> None:
    status, output = chaos_run.wait()  # it was started in the background when the session began
    if status is None:
        pytest.fail(f"bench/chaos.py --quick ran past {TIMEOUT_SECONDS} s\n{output}")
    assert status == 0, output
    results = chaos_run.results
    scenarios = {entry["scenario"]: entry for entry in json.loads(results.read_text())["scenarios"]}
    assert len(scenarios) == 12
    assert all(entry["duplicates"] == 0 and entry["lost"] == 0 for entry in scenarios.values()), scenarios
    assert all(entry["rows"] >= 30 for entry in scenarios.values())
    # The damage happened while deliveries were in flight, and hanging requests did make outcomes unknown.
    for name in ("kill -9 of a whole worker", "Redis restart", "PostgreSQL restart"):
        assert "received)" in scenarios[name]["note"], scenarios[name]
    assert scenarios["hanging requests (1 in 8 answers after 6 s)"]["unknown"] > 0
    # No process dies in these: every outcome is known (a run goes on past lost send marks, and waits for the
    # database to write what it sent).
    for name in ("Redis restart", "Redis FLUSHALL", "PostgreSQL restart"):
        assert scenarios[name]["unknown"] == 0, scenarios[name]
    assert scenarios["open breaker: deferred rows"]["late"] is not None
    assert scenarios["open breaker: deferred rows"]["late"] <= 60
