"""Every notifier log line once, its time in the scheme's zone with the offset (as the JSON answers give it)."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from notifier.health import check_beat
from tests.processes import run_python

ROOT = Path(__file__).resolve().parent.parent


def test_a_notifier_line_is_written_once_with_the_zones_offset(tmp_path):
    script = (
        "import logging, django; django.setup(); logging.basicConfig(format='ROOT %(message)s'); "
        "logging.getLogger('notifier.delivery').warning('one line')"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "NOTIFIER_VAR_DIR": str(tmp_path)}
    environment["TIME_ZONE"] = "Africa/Dar_es_Salaam"
    result = run_python("-c", script, env=environment, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "one line" in line]
    assert len(lines) == 1, result.stderr
    stamp, level, name, *_ = lines[0].split()
    assert (level, name) == ("WARNING", "notifier.delivery")
    assert stamp.endswith("+03:00") and stamp[10] == "T"


def test_the_formatter_and_health_json_share_the_zone(db, settings):
    from project.log_format import ZonedFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ZonedFormatter(fmt="%(asctime)s %(message)s"))
    record = logging.LogRecord("notifier", logging.INFO, __file__, 1, "x", None, None)
    record.created = 1_764_320_400.0  # 2025-11-28 09:00:00 UTC
    handler.emit(record)
    assert stream.getvalue() == "2025-11-28T12:00:00.000+03:00 x\n"
    assert check_beat().details["due_since"].endswith("+03:00")
