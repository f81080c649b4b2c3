"""Log times in the scheme's zone (TIME_ZONE), ISO 8601 with the offset, the same zone the JSON answers use."""

from __future__ import annotations

import datetime as dt
import logging
import os
from zoneinfo import ZoneInfo


class ZonedFormatter(logging.Formatter):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.zone = ZoneInfo(os.environ.get("TIME_ZONE", "Africa/Dar_es_Salaam"))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return dt.datetime.fromtimestamp(record.created, self.zone).isoformat(timespec="milliseconds")
