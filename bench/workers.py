"""The Celery workers of bench/deliver.py, and the CPU time of processes and of the machine from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench._common import ROOT


def process_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _cpu_ticks() -> list[int]:
    with open("/proc/stat", encoding="ascii") as handle:
        return [int(value) for value in handle.readline().split()[1:]]


def machine_busy_seconds() -> float:
    """CPU time this machine's processes and kernel used, every CPU together: user, nice, system, irq and softirq.
    Idle, iowait and steal (time the hypervisor gave the virtual CPUs to someone else) are not counted."""
    user, nice, system, _idle, _iowait, irq, softirq = _cpu_ticks()[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def machine_steal_seconds() -> float:
    """Time the hypervisor kept the virtual CPUs from running although they had work (a noisy host)."""
    return _cpu_ticks()[7] / os.sysconf("SC_CLK_TCK")


class Workers:
    """`celery -A project worker` in its own process group, logging to a file; stopped for sure on exit."""

    def __init__(self, concurrency: int, queue: str, log_dir: Path, env: dict[str, str]) -> None:
        self.log_path = log_dir / "worker.log"
        command = [sys.executable, "-m", "celery", "-A", "project", "worker", "--loglevel", "INFO"]
        command += ["--pool", "prefork", "--concurrency", str(concurrency), "-Q", queue, "-n", f"{queue}@%h"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.tail()}")
            if " ready." in self.log_path.read_text(encoding="utf-8", errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the worker was not ready within {timeout:.0f} s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        pids = [self.process.pid, *children(self.process.pid)]
        return sum(process_cpu_seconds(pid) for pid in pids)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):  # the pool children too, whatever state they are in
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        self.log.close()
