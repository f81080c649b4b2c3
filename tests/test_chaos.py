"""bench/chaos.py --quick as CI runs it: every scenario, on servers of its own; no duplicate, no lost row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_it_loses_and_duplicates_nothing_in_any_chaos_scenario(tmp_path: Path) -> None:
    results = tmp_path / "chaos.json"
    chaos = subprocess.Popen(
        [sys.executable, "bench/chaos.py", "--quick", "--json", str(results)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = chaos.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        chaos.terminate()  # chaos.py stops the PostgreSQL, Redis and workers it started before it exits
        try:
            stdout, stderr = chaos.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            chaos.kill()
            stdout, stderr = chaos.communicate()
        pytest.fail("bench/chaos.py --quick ran past 600 s\n" + stdout[-3000:] + stderr[-3000:])
    done = subprocess.CompletedProcess(chaos.args, chaos.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    scenarios = {entry["scenario"]: entry for entry in json.loads(results.read_text())["scenarios"]}
    assert len(scenarios) == 12
    assert all(entry["duplicates"] == 0 and entry["lost"] == 0 for entry in scenarios.values()), scenarios
    assert all(entry["rows"] >= 30 for entry in scenarios.values())
    # The damage happened while deliveries were in flight, and hanging requests did make outcomes unknown.
    for name in ("kill -9 of a whole worker", "Redis restart", "PostgreSQL restart"):
        assert "received)" in scenarios[name]["note"], scenarios[name]
    assert scenarios["hanging requests (1 in 8 answers after 6 s)"]["unknown"] > 0
    assert scenarios["open breaker: deferred rows"]["late"] is not None
    assert scenarios["open breaker: deferred rows"]["late"] <= 60
