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
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from notifier.report.query import FETCH_ROWS, FIELDS, OpenReport, ReportParams, ReportRow

_encoder = DjangoJSONEncoder()


def _batches(rows: Iterable[ReportRow]) -> Iterator[list[ReportRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, FETCH_ROWS)):
        yield batch


_APPROVAL = FIELDS.index("approval")
_COMMAS = len(FIELDS) - 1  # in a line none of whose fields holds a comma


def csv_chunks(rows: Iterable[ReportRow]) -> Iterator[str]:
    """The header line, then the rows, FETCH_ROWS lines per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELDS)
    yield buffer.getvalue()
    for batch in _batches(rows):
        lines = []
        for row in batch:
            # Every field is a string or None (written empty) but the approval, written true/false.
            fields: list[str] = [value or "" for value in row]  # type: ignore[misc]
            fields[_APPROVAL] = "true" if row[_APPROVAL] else "false"
            line = ",".join(fields)
            if line.count(",") == _COMMAS and '"' not in line and "\r" not in line and "\n" not in line:
                lines.append(line)  # no field to quote: what csv.writer would write, without its per-field work
            else:
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(fields)
                lines.append(buffer.getvalue()[:-2])
        lines.append("")
        yield "\r\n".join(lines)


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


# A row as json.dumps writes the dict of FIELDS: `{"district": <v>, "ward": <v>, ...}`. The first three values (the
# place) start each row; the other eleven fill in _JSON_REST.
_JSON_PLACE = "{" + ", ".join(f"{_encoder.encode(name)}: %s" for name in FIELDS[:3]) + ", "
_JSON_REST = ", ".join(f"{_encoder.encode(name)}: %s" for name in FIELDS[3:]) + "}"


def _json_rows(batch: list[ReportRow]) -> str:
    """The rows as json.dumps writes a list of their dicts, without the brackets, byte for byte (ensure_ascii:
    every string through the encoder's own function; None as null, the approval as true/false). Faster than a dict
    per row for the encoder: the keys are written once, and a place (the same for a village's rows) once a run."""
    quoted = encode_basestring_ascii
    rest = _JSON_REST
    place: tuple[str, str, str] | None = None
    place_json = ""
    rows = []
    for row in batch:
        if row[:3] != place:
            place = row[:3]
            place_json = _JSON_PLACE % (quoted(place[0]), quoted(place[1]), quoted(place[2]))
        # Every field after the place is a string or None but the approval (true/false).
        texts: tuple[str | None, ...] = row[3:_APPROVAL] + row[_APPROVAL + 1 :]  # type: ignore[assignment]
        values = ["null" if value is None else quoted(value) for value in texts]
        values.insert(_APPROVAL - 3, "true" if row[_APPROVAL] else "false")
        rows.append(place_json + rest % tuple(values))
    return ", ".join(rows)


def json_chunks(params: ReportParams, report: OpenReport, generated_on: dt.date) -> Iterator[str]:
    """`{...header..., "rows": [` then the rows, a batch per chunk, then `]}`."""
    header = _encoder.encode(report_header(params, report.count, generated_on))
    yield header[:-1] + ', "rows": ['
    separator = ""
    for batch in _batches(report.rows):
        # A list's encoding without its brackets: the rows joined by ", ", as json.dumps writes a list.
        yield separator + _json_rows(batch)
        separator = ", "
    yield "]}"
