"""One beat at a time: two real `celery beat` processes, one Redis lock; the second takes over when the first
stops; each leaves a heartbeat the beat container's health check reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from notifier.beat import LOCK_KEY, heartbeat_key
from tests.processes import SERVICE_SECRET_KEY, kill_group, subprocess_database_url, wait_for

ROOT = Path(__file__).resolve().parent.parent


def start_beat(tmp_path: Path, name: str, settings) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / f"{name}.log"
    environment = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "DJANGO_SECRET_KEY": SERVICE_SECRET_KEY,
        "NOTIFIER_VAR_DIR": str(tmp_path),
        "NOTIFIER_BEAT_LOCK_SECONDS": "4",
        "PYTHON_BIN": str(Path(sys.executable).parent),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(ROOT / "bin" / "beat")], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return process, log_path


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_second_beat_stands_by_and_takes_over(tmp_path, settings):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(LOCK_KEY, heartbeat_key())
    first, first_log = start_beat(tmp_path, "first", settings)
    second = None
    try:
        wait_for(lambda: "acquired the beat lock" in first_log.read_text(), timeout=60, what="the first beat's lock")
        second, second_log = start_beat(tmp_path, "second", settings)
        wait_for(lambda: "standing by" in second_log.read_text(), timeout=60, what="the second beat standing by")
        assert "acquired the beat lock" not in second_log.read_text()
        call_command("beat_health")  # this host's beats tick
        kill_group(first)
        wait_for(lambda: "acquired the beat lock" in second_log.read_text(), timeout=30, what="the takeover")
    finally:
        kill_group(first)
        if second is not None:
            kill_group(second)
        client.delete(LOCK_KEY)
    client.set(heartbeat_key(), "1000")  # a tick long ago: stuck
    with pytest.raises(CommandError, match=r"beat: last tick \d+ s ago \(limit 120 s\): stuck or stopped"):
        call_command("beat_health")
    client.delete(heartbeat_key())
    with pytest.raises(CommandError, match="beat: no heartbeat from this host"):
        call_command("beat_health")
    client.close()
