"""Delivery's writes of a run's results: rendered texts, outcomes, attempts; only to rows the run still owns."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections, router
from django.db.models import Field

from notifier.delivery.store import run_prepared
from notifier.models import DeliveryAttempt, Outbox

Status = Outbox.Status
_WRITE_BATCH = 100
_INCREMENT = object()  # "attempts + 1"


@dataclass(frozen=True)
class RowOutcome:
    """How a claimed row leaves `sending`."""

    status: str
    error: str
    at: datetime
    counts_attempt: bool = False
    account: int | None = None  # the provider account the row names; None: unchanged
    reference: str | None = None  # the gateway's reference; None: unchanged
    next_at: datetime | None = None  # due again then; None: unchanged
    started: datetime | None = None  # when this run's first provider call began; kept if the row has a mark


@dataclass(frozen=True)
class Attempt:
    outbox_id: int
    account_id: int
    provider: str
    started_at: datetime
    duration_ms: int
    outcome: str
    http_status: int | None = None
    error: str = ""


# Only rows still ours change: leased to the run and `sending`, or `unknown` because the sweeper gave up on us while
# a call was in flight (its real outcome is better than a guess; a row taken back untried has lost its owner).
# On PostgreSQL every write is one statement of a fixed text, prepared once per connection, over the chunk's rows
# as one JSON parameter: no SQL composed, parsed or planned per chunk (composing a CASE per row and column cost more
# CPU than the sending), and one string to pass (psycopg dumps arrays element by element in Python: ~1 ms of CPU for
# the nine arrays of 50 outcomes, against ~0.3 ms for their JSON).
_WRITE_OUTCOMES = (
    "UPDATE notifier_outbox AS o SET status = v.status, last_error = v.last_error, updated_at = v.at, "
    "lease_expires_at = NULL, lease_owner = CASE WHEN v.status = %s THEN '' ELSE o.lease_owner END, "
    "attempts = o.attempts + v.increment, provider_account_id = COALESCE(v.account, o.provider_account_id), "
    "provider_reference = COALESCE(v.reference, o.provider_reference), "
    "sent_at = CASE WHEN v.status = %s THEN v.at ELSE o.sent_at END, "
    "next_attempt_at = COALESCE(v.next_at, o.next_attempt_at), "
    "send_started_at = COALESCE(o.send_started_at, v.started) "
    "FROM json_to_recordset(%s::json) AS v(id bigint, status varchar, last_error text, at timestamptz, "
    "increment integer, account bigint, reference varchar, next_at timestamptz, started timestamptz) "
    "WHERE o.id = v.id AND o.lease_owner = %s AND o.status IN (%s, %s)"
)
_OUTCOME_FIELDS = ("id", "status", "last_error", "at", "increment", "account", "reference", "next_at", "started")
_WRITE_TEXTS = (
    "UPDATE notifier_outbox AS o SET text = v.text, encoding = v.encoding, segments = v.segments "
    "FROM json_to_recordset(%s::json) AS v(id bigint, text text, encoding varchar, segments integer) "
    "WHERE o.id = v.id AND o.lease_owner = %s AND o.status IN (%s, %s)"
)
_ADD_ATTEMPTS = (
    "INSERT INTO notifier_delivery_attempt (outbox_id, provider_account_id, provider, started_at, duration_ms, "
    "outcome, http_status, error) SELECT outbox_id, account_id, provider, started_at, duration_ms, outcome, "
    "http_status, error FROM json_to_recordset(%s::json) AS v(outbox_id bigint, account_id bigint, "
    "provider varchar, started_at timestamptz, duration_ms integer, outcome varchar, http_status integer, error text)"
)
_ATTEMPT_FIELDS = (
    "outbox_id", "account_id", "provider", "started_at", "duration_ms", "outcome", "http_status", "error"
)  # fmt: skip


def _json_rows(fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows for json_to_recordset: an object per row; datetimes (aware) in ISO 8601 with their offset, strings
    without NUL (PostgreSQL text cannot hold it: a gateway's answer may)."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("\x00", "\ufffd") if "\x00" in value else value
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    return json.dumps([dict(zip(fields, map(clean, row), strict=True)) for row in rows], separators=(",", ":"))


def write_texts(texts: dict[int, tuple[str, str, int]], owner: str) -> None:
    """The rendered words (text, encoding, segments) of rows still ours, before anything is sent."""
    if not texts:
        return
    connection = connections[router.db_for_write(Outbox)]
    if connection.vendor != "postgresql":
        fields = ("text", "encoding", "segments")
        _write_by_case({key: dict(zip(fields, value, strict=True)) for key, value in texts.items()}, owner)
        return
    rows = _json_rows(("id", "text", "encoding", "segments"), ((key, *value) for key, value in texts.items()))
    run_prepared(connection, _WRITE_TEXTS, [rows, owner, Status.SENDING.value, Status.UNKNOWN.value])


def write_outcomes(outcomes: dict[int, RowOutcome], owner: str) -> None:
    """How rows still ours left `sending`: one statement (PostgreSQL), which also ends their leases."""
    if not outcomes:
        return
    connection = connections[router.db_for_write(Outbox)]
    if connection.vendor != "postgresql":
        _write_by_case({key: _as_fields(outcome) for key, outcome in outcomes.items()}, owner)
        return
    rows = _json_rows(
        _OUTCOME_FIELDS,
        (
            (key, o.status, o.error[:2000], o.at, int(o.counts_attempt), o.account, o.reference, o.next_at, o.started)
            for key, o in outcomes.items()
        ),
    )
    params = [Status.PENDING.value, Status.SENT.value, rows, owner, Status.SENDING.value, Status.UNKNOWN.value]
    run_prepared(connection, _WRITE_OUTCOMES, params)


def add_attempts(attempts: list[Attempt]) -> None:
    if not attempts:
        return
    connection = connections[router.db_for_write(DeliveryAttempt)]
    if connection.vendor != "postgresql":
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                outbox_id=a.outbox_id,
                provider_account_id=a.account_id,
                provider=a.provider,
                started_at=a.started_at,
                duration_ms=a.duration_ms,
                outcome=a.outcome,
                http_status=a.http_status,
                error=a.error,
            )
            for a in attempts
        )
        return
    run_prepared(
        connection,
        _ADD_ATTEMPTS,
        [_json_rows(_ATTEMPT_FIELDS, ([getattr(a, name) for name in _ATTEMPT_FIELDS] for a in attempts))],
    )


def _as_fields(outcome: RowOutcome) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": outcome.status,
        "last_error": outcome.error[:2000],
        "updated_at": outcome.at,
        "lease_expires_at": None,
    }
    if outcome.status == Status.PENDING:
        values["lease_owner"] = ""
    if outcome.counts_attempt:
        values["attempts"] = _INCREMENT
    if outcome.account is not None:
        values["provider_account"] = outcome.account
    if outcome.reference is not None:
        values["provider_reference"] = outcome.reference
    if outcome.status == Status.SENT:
        values["sent_at"] = outcome.at
    if outcome.next_at is not None:
        values["next_attempt_at"] = outcome.next_at
    return values


def _write_by_case(writes: dict[int, dict[str, Any]], owner: str) -> None:
    """SQLite: one UPDATE per 100 rows, each column a CASE over the row ids."""
    connection = connections[router.db_for_write(Outbox)]
    quote = connection.ops.quote_name
    items = list(writes.items())
    for start in range(0, len(items), _WRITE_BATCH):
        part = items[start : start + _WRITE_BATCH]
        assignments: list[str] = []
        params: list[Any] = []
        for name in sorted({name for _outbox_id, values in part for name in values}):
            model_field = Outbox._meta.get_field(name)
            assert isinstance(model_field, Field)
            column = quote(model_field.column)
            branches: list[str] = []
            for outbox_id, values in part:
                if name not in values:
                    continue
                if values[name] is _INCREMENT:
                    branches.append(f"WHEN %s THEN {column} + 1")
                    params.append(outbox_id)
                else:
                    branches.append("WHEN %s THEN %s")
                    params += [outbox_id, model_field.get_db_prep_save(values[name], connection)]
            assignments.append(f"{column} = CASE id {' '.join(branches)} ELSE {column} END")
        ids = [outbox_id for outbox_id, _values in part]
        sql = (
            f"UPDATE notifier_outbox SET {', '.join(assignments)} "  # noqa: S608 (names from the model)
            f"WHERE id IN ({', '.join(['%s'] * len(ids))}) AND lease_owner = %s AND status IN (%s, %s)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, *ids, owner, Status.SENDING.value, Status.UNKNOWN.value])
