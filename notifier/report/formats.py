"""The report as JSON and CSV, written a batch of rows at a time as they come from the cursor (never all held).

The JSON is, byte for byte, what `JsonResponse` made of the whole report before it streamed: the same keys in the
same order (`count` before `rows`), json.dumps's separators and ASCII escapes. The CSV has a header row of
FIELDS, then one row per family, CRLF line ends; booleans are `true`/`false`, None is empty.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from notifier.report.query import FETCH_ROWS, FIELDS, OpenReport, ReportParams, ReportRow

_encoder = DjangoJSONEncoder()


def _batches(rows: Iterable[ReportRow]) -> Iterator[list[ReportRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, FETCH_ROWS)):
        yield batch


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_chunks(rows: Iterable[ReportRow]) -> Iterator[str]:
    """The header line, then the rows, FETCH_ROWS lines per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELDS)
    yield buffer.getvalue()
    for batch in _batches(rows):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_csv_value(value) for value in row] for row in batch)
        yield buffer.getvalue()


def report_header(params: ReportParams, count: int, generated_on: dt.date) -> dict[str, Any]:
    """Everything the JSON says before its rows."""
    officer = params.officer
    return {
        "location": {
            "uuid": str(params.area.uuid),
            "type": params.area.type,
            "code": params.area.code,
            "name": params.area.name,
        },
        "officer": None
        if officer is None
        else {"uuid": str(officer.uuid), "code": officer.code, "name": f"{officer.other_names} {officer.last_name}"},
        "mode": int(params.mode),
        "modeLabel": params.mode_label,
        "date": generated_on.isoformat(),
        "count": count,
    }


def json_chunks(params: ReportParams, report: OpenReport, generated_on: dt.date) -> Iterator[str]:
    """`{...header..., "rows": [` then the rows, a batch per chunk (one encoder call each), then `]}`."""
    header = _encoder.encode(report_header(params, report.count, generated_on))
    yield header[:-1] + ', "rows": ['
    separator = ""
    for batch in _batches(report.rows):
        # A list's encoding without its brackets: the rows joined by ", ", as json.dumps writes a list.
        yield separator + _encoder.encode([dict(zip(FIELDS, row, strict=True)) for row in batch])[1:-1]
        separator = ", "
    yield "]}"
