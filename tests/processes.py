"""Helpers for tests that start real processes: every wait is bounded and every process group is killed."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def run_python(
    *arguments: str, env: Mapping[str, str], timeout: float = 300, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`python <arguments>` (a script, `manage.py ...`, `-c ...`) in the checkout, its output captured as text.
    Never raises on the exit status: the caller asserts on it."""
    return subprocess.run(
        [sys.executable, *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


# A service with a broker (web, worker, beat) refuses the public development key: the ones the tests start get this.
SERVICE_SECRET_KEY = f"test-only-{secrets.token_hex(16)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll `condition` until true; fail naming `what` after `timeout` seconds or when `process` died first."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"waiting for {what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waiting for {what}: not there after {timeout} s")
        time.sleep(0.2)


def kill_group(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """Stop a process started with start_new_session=True and everything it started: TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


def subprocess_database_url() -> str:
    """A DATABASE_URL for pytest-django's test database, so a subprocess works on the same rows as the test."""
    database = connection.settings_dict
    credentials = quote(database["USER"] or "", safe="")
    if database.get("PASSWORD"):
        credentials += ":" + quote(database["PASSWORD"], safe="")
    return f"postgres://{credentials}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
