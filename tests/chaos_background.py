"""bench/chaos.py --quick started as soon as the suite knows it will run tests/test_chaos.py, so that its ~2 minutes
of mostly waiting (timed outages, leases running out) overlap the other tests instead of adding to them. It runs on
servers of its own (PostgreSQL, Redis, workers, gateway), so it shares nothing with the other tests but the CPU.
The test waits for it and checks its results; the session's end stops it if the test never ran (-x, a deselect)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_SECONDS = 600


@dataclass
class ChaosRun:
    process: subprocess.Popen[bytes]
    directory: Path
    started: float

    @property
    def results(self) -> Path:
        return self.directory / "chaos.json"

    def output(self) -> str:
        return "\n".join(
            (self.directory / name).read_text(encoding="utf-8", errors="replace")[-3000:]
            for name in ("stdout.txt", "stderr.txt")
        )

    def wait(self) -> tuple[int | None, str]:
        """(exit status, the end of its output); None when it ran past TIMEOUT_SECONDS from its start (then it has
        been stopped)."""
        try:
            status: int | None = self.process.wait(timeout=max(1.0, self.started + TIMEOUT_SECONDS - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            status = None
        return status, self.output()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # chaos.py stops the PostgreSQL, Redis and workers it started before it exits
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start() -> ChaosRun:
    directory = Path(tempfile.mkdtemp(prefix="chaos-suite-"))
    with (directory / "stdout.txt").open("wb") as stdout, (directory / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "bench/chaos.py", "--quick", "--json", str(directory / "chaos.json")],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C of the suite reaches it only as the TERM sent on the session's end
        )
    return ChaosRun(process=process, directory=directory, started=time.monotonic())
