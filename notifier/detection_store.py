"""Detection's writes: outbox rows for the queued candidates and the decision trace for all of them (SPEC §4).

Row by row (`write_chunk`: bulk inserts per chunk, any database) or, on PostgreSQL, set-based (`write_set_based`:
one INSERT ... SELECT statement per type fed by the candidate query, so no candidate crosses into Python and memory
does not grow with the population). A queued decision is never downgraded: a concurrent run's outbox row is the
truth (`queued_meanwhile`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Field, QuerySet
from django.db.models.functions import TruncDate

from notifier.models import Decision, DetectionRun, Outbox

QUEUED = Decision.Outcome.QUEUED.value
SKIPPED = Decision.Outcome.SKIPPED.value
OBSOLETE = Decision.Outcome.OBSOLETE.value

Sql = tuple[str, list[Any]]  # an SQL fragment and its parameters


@dataclass(frozen=True)
class CandidateDecision:
    """What detection decided for one candidate (also what --dry-run prints)."""

    notification_type: str
    policy_id: int
    family_id: int
    event_date: dt.date
    outcome: str
    reason: str
    recipient: str | None
    language: str


def chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def source_sql(rows: QuerySet[Any, dict[str, Any]]) -> Sql:
    """The values() query's SQL as `q`, its output columns named as values() names them (fields, then
    annotations, in Django's select order)."""
    rows = rows.annotate(event_day=TruncDate("validity_from"))
    names = [*rows.query.values_select, *rows.query.annotation_select]
    sql, params = rows.query.sql_with_params()
    return f"({sql}) AS q ({', '.join(names)})", list(params)


def write_chunk(run: DetectionRun, decisions: list[CandidateDecision], now: dt.datetime) -> None:
    """Outbox rows for the queued, then the decision trace; a queued decision is never downgraded."""
    notification_type = run.notification_type
    queued = [d for d in decisions if d.outcome == QUEUED]
    if queued:
        Outbox.objects.bulk_create(
            [
                Outbox(
                    policy_id=d.policy_id,
                    notification_type=notification_type,
                    event_date=d.event_date,
                    family_id=d.family_id,
                    recipient=d.recipient or "",
                    language=d.language,
                    status=Outbox.Status.PENDING,
                    detection_run=run,
                    created_at=now,
                    next_attempt_at=now,
                )
                for d in queued
            ],
            ignore_conflicts=True,
        )
    Decision.objects.bulk_create(
        [
            Decision(
                policy_id=d.policy_id,
                notification_type=notification_type,
                event_date=d.event_date,
                outcome=d.outcome,
                reason=d.reason,
                first_evaluated_at=now,
                last_evaluated_at=now,
            )
            for d in decisions
        ],
        update_conflicts=True,
        unique_fields=["policy", "notification_type"],
        update_fields=["event_date", "outcome", "reason", "last_evaluated_at"],
    )
    not_queued = [d.policy_id for d in decisions if d.outcome != QUEUED]
    if not_queued:
        # A concurrent run may have queued one of these after our read: its outbox row is the truth. Looked up
        # first, updated only when found: as one UPDATE ... WHERE EXISTS it was planned as a nested loop over both
        # tables while their statistics were those of empty tables (a first run), 0.1-0.3 s per chunk.
        queued_meanwhile = list(
            Outbox.objects.filter(notification_type=notification_type, policy_id__in=not_queued).values_list(
                "policy_id", flat=True
            )
        )
        if queued_meanwhile:
            Decision.objects.filter(notification_type=notification_type, policy_id__in=queued_meanwhile).exclude(
                outcome=QUEUED
            ).update(outcome=QUEUED, reason=Decision.Reason.NONE.value)


def _column(model: type[Any], name: str) -> str:
    model_field = model._meta.get_field(name)
    assert isinstance(model_field, Field)
    return str(connection.ops.quote_name(model_field.column))


def _insert_parts(model: type[Any], given: dict[str, str], now: dt.datetime) -> tuple[str, str, list[Any]]:
    """(column list, select list, params) for INSERT … SELECT into `model`: a column named in `given` takes that
    SQL expression, every other one its model default (auto_now: `now`), as bulk_create would write it."""
    quote = connection.ops.quote_name
    columns: list[str] = []
    values: list[str] = []
    params: list[Any] = []
    for model_field in model._meta.concrete_fields:
        if model_field.primary_key:
            continue
        columns.append(quote(model_field.column))
        if model_field.attname in given:
            values.append(given[model_field.attname])
            continue
        auto = getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False)
        value: Any = now if auto else model_field.get_default()  # "" for a text column without a default
        values.append(f"CAST(%s AS {model_field.db_type(connection)})")
        params.append(model_field.get_db_prep_save(value, connection))
    return ", ".join(columns), ", ".join(values), params


def write_set_based(
    run: DetectionRun, source: Sql, event_date: Sql, superseding_date: Sql, reason: Sql | None, now: dt.datetime
) -> Counter[str]:
    """Decisions for the candidate rows (outbox rows for the queued), in one statement, then the correction for
    rows a concurrent run queued meanwhile. Returns how many rows took each outcome and reason ("queued": n).

    `source`: the candidate query as `q`; `event_date`, `superseding_date`: expressions over `q`; `reason`: the
    decision rule over `c` ('' when queued), None for obsolete rows (no outbox rows then)."""
    notification_type = run.notification_type
    quote = connection.ops.quote_name
    obsolete = reason is None
    if reason is None:
        reason_sql, reason_params = "CAST(%s AS varchar)", [Decision.Reason.TOO_LATE.value]
        outcome_sql, outcome_params = "CAST(%s AS varchar)", [OBSOLETE]
        approved = "NULL::boolean AS approved, NULL::varchar AS recipient, NULL::boolean AS opted_out"
    else:
        reason_sql, reason_params = reason
        outcome_sql = "CAST(CASE WHEN r.reason = %s THEN %s ELSE %s END AS varchar)"
        outcome_params = [Decision.Reason.NONE.value, QUEUED, SKIPPED]
        approved = "q.approved, q.recipient, q.opted_out"
    outbox_columns, outbox_values, outbox_params = _insert_parts(
        Outbox,
        {
            "policy_id": "d.pk",
            "notification_type": "d.notification_type",
            "event_date": "d.event_date",
            "family_id": "d.family_id",
            "recipient": "COALESCE(d.recipient, '')",
            "language": "COALESCE(d.sms_language, '')",
            "status": "d.pending",
            "detection_run_id": "d.run_id",
            "created_at": "d.now",
            "next_attempt_at": "d.now",
        },
        now,
    )
    decision_columns, decision_values, decision_params = _insert_parts(
        Decision,
        {
            "policy_id": "d.pk",
            "notification_type": "d.notification_type",
            "event_date": "d.event_date",
            "outcome": "d.outcome",
            "reason": "d.reason",
            "first_evaluated_at": "d.now",
            "last_evaluated_at": "d.now",
        },
        now,
    )
    outbox_table, decision_table = quote(Outbox._meta.db_table), quote(Decision._meta.db_table)
    conflict = ", ".join(_column(Decision, name) for name in ("policy", "notification_type"))
    updated = ", ".join(
        f"{column} = EXCLUDED.{column}"
        for column in (_column(Decision, name) for name in ("event_date", "outcome", "reason", "last_evaluated_at"))
    )
    queue_rows = (
        f"""queued AS (
            INSERT INTO {outbox_table} ({outbox_columns})
            SELECT {outbox_values} FROM d WHERE d.outcome = %s ORDER BY d.pk
            ON CONFLICT DO NOTHING
        ), """  # noqa: S608 - names from the models, values as parameters
        if not obsolete
        else ""
    )
    sql = f"""
        WITH c AS MATERIALIZED (
            SELECT q.pk, q.family_id, {superseding_date[0]} AS superseding_date, {event_date[0]} AS event_date,
                   q.sms_language, {approved}
            FROM {source[0]}
        ), d AS MATERIALIZED (
            SELECT c.*, r.reason, o.outcome, CAST(%s AS varchar) AS notification_type,
                   CAST(%s AS timestamptz) AS now, CAST(%s AS bigint) AS run_id, CAST(%s AS varchar) AS pending
            FROM c CROSS JOIN LATERAL (SELECT {reason_sql} AS reason) AS r
                   CROSS JOIN LATERAL (SELECT {outcome_sql} AS outcome) AS o
        ), {queue_rows}decided AS (
            INSERT INTO {decision_table} ({decision_columns})
            SELECT {decision_values} FROM d ORDER BY d.pk
            ON CONFLICT ({conflict}) DO UPDATE SET {updated}
        )
        SELECT d.outcome, d.reason, count(*), array_agg(d.pk) FILTER (WHERE d.outcome <> %s)
        FROM d GROUP BY d.outcome, d.reason
    """  # noqa: S608 - names from the models, values as parameters
    params: list[Any] = [*superseding_date[1], *event_date[1], *source[1]]
    params += [notification_type, now, run.pk, Outbox.Status.PENDING.value, *reason_params, *outcome_params]
    if not obsolete:
        params += [*outbox_params, QUEUED]
    params += [*decision_params, QUEUED]
    counts: Counter[str] = Counter()
    not_queued: list[int] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for outcome, why, count, ids in cursor.fetchall():
            counts["queued" if outcome == QUEUED else why] += int(count)
            not_queued += ids or []
    queued_meanwhile(notification_type, not_queued)
    return counts


def queued_meanwhile(notification_type: str, not_queued: list[int]) -> None:
    """A concurrent run may have queued some of these after our read: its outbox row is the truth (a queued
    decision is never downgraded). Looked up first, updated only when found."""
    if not not_queued:
        return
    quote = connection.ops.quote_name
    policy, kind = _column(Outbox, "policy"), _column(Outbox, "notification_type")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {policy} FROM {quote(Outbox._meta.db_table)} "  # noqa: S608 - names from the model
            f"WHERE {kind} = %s AND {policy} = ANY(%s)",
            [notification_type, not_queued],
        )
        found = [row[0] for row in cursor.fetchall()]
    if found:
        Decision.objects.filter(notification_type=notification_type, policy_id__in=found).exclude(
            outcome=QUEUED
        ).update(outcome=QUEUED, reason=Decision.Reason.NONE.value)
