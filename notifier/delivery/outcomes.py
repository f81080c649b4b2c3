"""Delivery's writes of a run's results: rendered texts, outcomes, attempts; only to rows the run still owns."""

from __future__ import annotations

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
# On PostgreSQL every write is one statement of a fixed text over arrays, prepared once per connection: no SQL
# composed, parsed or planned per chunk (composing a CASE per row and column cost more CPU than the sending).
_WRITE_OUTCOMES = (
    "UPDATE notifier_outbox AS o SET status = v.status, last_error = v.last_error, updated_at = v.at, "
    "lease_expires_at = NULL, lease_owner = CASE WHEN v.status = %s THEN '' ELSE o.lease_owner END, "
    "attempts = o.attempts + v.increment, provider_account_id = COALESCE(v.account, o.provider_account_id), "
    "provider_reference = COALESCE(v.reference, o.provider_reference), "
    "sent_at = CASE WHEN v.status = %s THEN v.at ELSE o.sent_at END, "
    "next_attempt_at = COALESCE(v.next_at, o.next_attempt_at), "
    "send_started_at = COALESCE(o.send_started_at, v.started) "
    "FROM unnest(%s::bigint[], %s::varchar[], %s::text[], %s::timestamptz[], %s::integer[], %s::bigint[], "
    "%s::varchar[], %s::timestamptz[], %s::timestamptz[]) "
    "AS v(id, status, last_error, at, increment, account, reference, next_at, started) "
    "WHERE o.id = v.id AND o.lease_owner = %s AND o.status IN (%s, %s)"
)
_WRITE_TEXTS = (
    "UPDATE notifier_outbox AS o SET text = v.text, encoding = v.encoding, segments = v.segments "
    "FROM unnest(%s::bigint[], %s::text[], %s::varchar[], %s::integer[]) AS v(id, text, encoding, segments) "
    "WHERE o.id = v.id AND o.lease_owner = %s AND o.status IN (%s, %s)"
)
_ADD_ATTEMPTS = (
    "INSERT INTO notifier_delivery_attempt (outbox_id, provider_account_id, provider, started_at, duration_ms, "
    "outcome, http_status, error) SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], "
    "%s::timestamptz[], %s::integer[], %s::varchar[], %s::integer[], %s::text[])"
)


def write_texts(texts: dict[int, tuple[str, str, int]], owner: str) -> None:
    """The rendered words (text, encoding, segments) of rows still ours, before anything is sent."""
    if not texts:
        return
    connection = connections[router.db_for_write(Outbox)]
    if connection.vendor != "postgresql":
        fields = ("text", "encoding", "segments")
        _write_by_case({key: dict(zip(fields, value, strict=True)) for key, value in texts.items()}, owner)
        return
    columns = [list(texts), *(list(column) for column in zip(*texts.values(), strict=True))]
    run_prepared(connection, _WRITE_TEXTS, [*columns, owner, Status.SENDING.value, Status.UNKNOWN.value])


def write_outcomes(outcomes: dict[int, RowOutcome], owner: str) -> None:
    """How rows still ours left `sending`: one statement (PostgreSQL), which also ends their leases."""
    if not outcomes:
        return
    connection = connections[router.db_for_write(Outbox)]
    if connection.vendor != "postgresql":
        _write_by_case({key: _as_fields(outcome) for key, outcome in outcomes.items()}, owner)
        return
    rows = outcomes.values()
    params: list[Any] = [
        Status.PENDING.value,
        Status.SENT.value,
        list(outcomes),
        [outcome.status for outcome in rows],
        [outcome.error[:2000] for outcome in rows],
        [outcome.at for outcome in rows],
        [int(outcome.counts_attempt) for outcome in rows],
        [outcome.account for outcome in rows],
        [outcome.reference for outcome in rows],
        [outcome.next_at for outcome in rows],
        [outcome.started for outcome in rows],
    ]
    run_prepared(connection, _WRITE_OUTCOMES, [*params, owner, Status.SENDING.value, Status.UNKNOWN.value])


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
    names = ("outbox_id", "account_id", "provider", "started_at", "duration_ms", "outcome", "http_status", "error")
    run_prepared(connection, _ADD_ATTEMPTS, [[getattr(a, name) for a in attempts] for name in names])


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
