"""Delivery's SQL but its writes of outcomes: who may send an outbox row (a lease, not the age of a claim), and
what a run loads.

A delivery run claims rows (pending → sending) under a random owner token and an expiry (`lease_expires_at`).
Only that owner sends them, and only after marking the row's send as started, in a step that also proves the row
is still its own: either one conditional statement per provider call (`take_turn`), or, when the run keeps its
marks in Redis (notifier.coordination), the admission script, which refuses a run the sweeper has fenced. Its
writes (notifier.delivery.outcomes) are conditional on the token too. While the run works, a keeper thread
(notifier.delivery.lease) extends the leases of its rows; a run that is killed, paused (SIGSTOP) or hung stops
extending them, and once they have expired the sweeper takes the rows back (`reclaim_expired`): a row whose send
had started becomes `unknown` (never resent automatically), an untried one pending again. A paused run that wakes
up finds its rows gone and sends nothing: a slow gateway or a long chunk can delay messages, never duplicate them.

All times are the application's clock (`timezone.now()`), as every other outbox timestamp.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import psycopg.types.datetime
import redis
from django.db import connections, router, transaction
from django.db.models import F, Field, ForeignKey, Model, Q, QuerySet, signals
from django.db.models.base import ModelState
from django.utils import timezone

from notifier import coordination
from notifier.models import DeliveryAttempt, Family, Insuree, Outbox, Policy, Product, ProviderAccount
from notifier.settings import get_settings

logger = logging.getLogger(__name__)

_IDS_PER_STATEMENT = 500
Status = Outbox.Status


# The owner token of a run that keeps its send marks in Redis starts with this (never a hex digit).
MARKS_IN_REDIS = "r"


def new_owner(marks_in_redis: bool = False) -> str:
    """A run's random owner token (32 characters); `marks_in_redis`: the sweeper asks Redis what it started."""
    token = secrets.token_hex(16)
    return MARKS_IN_REDIS + token[1:] if marks_in_redis else token


def _sql() -> tuple[Any, str]:
    connection = connections[router.db_for_write(Outbox)]
    return connection, connection.ops.quote_name(Outbox._meta.db_table)


def _stamp(connection: Any, moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


# --- claim -------------------------------------------------------------------------------------------------------


def claim(outbox_id: int, now: datetime, owner: str) -> bool:
    """Claim one row (pending → sending, leased to `owner`) if it is due; True when this call claimed it."""
    claimed = Outbox.objects.filter(pk=outbox_id, status=Status.PENDING, next_attempt_at__lte=now).update(
        status=Status.SENDING,
        claimed_at=now,
        send_started_at=None,
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=get_settings().delivery_lease_seconds),
        updated_at=now,
    )
    return claimed == 1


def claim_chunk(outbox_ids: Sequence[int], now: datetime, owner: str | None = None) -> list[int]:
    """Claim the due pending rows among `outbox_ids` (pending → sending, leased to `owner`), one statement per
    500 ids. Returns the ids this call claimed.

    On PostgreSQL a row another worker is claiming at this very moment is left to it (SKIP LOCKED) instead of
    waiting for it; SQLite serialises writers, so its plain conditional UPDATE suffices. Either way a row is
    claimed by exactly one caller.
    """
    owner = owner or new_owner()
    ids = list(outbox_ids)
    claimed: list[int] = []
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        claimed.extend(_claim_batch(ids[start : start + _IDS_PER_STATEMENT], now, owner))
    return claimed


def _claim_batch(ids: list[int], now: datetime, owner: str) -> list[int]:
    if not ids:
        return []
    connection, table = _sql()
    stamp, expires = (
        _stamp(connection, now),
        _stamp(connection, now + timedelta(seconds=get_settings().delivery_lease_seconds)),
    )
    # Only the table name and placeholders are formatted into the SQL; every value is a parameter.
    head: list[Any] = [Status.SENDING.value, stamp, stamp, owner, expires]
    if connection.vendor == "postgresql":
        # The rows are found by their ids alone (the primary key), then checked: with the due conditions in the
        # same WHERE, PostgreSQL may scan outbox_status_due_idx for every pending row and filter the ids out of
        # them; it does whenever its statistics lag behind a fresh batch of pending rows, as after each detection
        # run (20 ms a chunk of 50 with 20,000 pending rows, and growing with the backlog).
        sql = (
            "WITH picked AS MATERIALIZED (SELECT id, status, next_attempt_at "  # noqa: S608
            f"FROM {table} WHERE id = ANY(%s::bigint[]) FOR UPDATE SKIP LOCKED) "
            f"UPDATE {table} AS o SET status = %s, claimed_at = %s, updated_at = %s, send_started_at = NULL, "
            "lease_owner = %s, lease_expires_at = %s FROM picked "
            "WHERE o.id = picked.id AND picked.status = %s AND picked.next_attempt_at <= %s RETURNING o.id"
        )
        params: list[Any] = [ids, *head, Status.PENDING.value, stamp]
    elif connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        sql = (
            f"UPDATE {table} SET status = %s, claimed_at = %s, updated_at = %s, send_started_at = NULL, "  # noqa: S608
            f"lease_owner = %s, lease_expires_at = %s WHERE id IN ({', '.join(['%s'] * len(ids))}) "
            "AND status = %s AND next_attempt_at <= %s RETURNING id"
        )
        params = [*head, *ids, Status.PENDING.value, stamp]
    else:  # no UPDATE … RETURNING: one conditional UPDATE per row
        return [outbox_id for outbox_id in ids if claim(outbox_id, now, owner)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [int(row[0]) for row in cursor.fetchall()]


# --- while the owner works ---------------------------------------------------------------------------------------


def take_turn(outbox_id: int, owner: str) -> bool:
    """Before each provider call: prove that `owner` still holds the row's unexpired lease and mark the send as
    started (kept from the first call of this claim), in one statement. False: the row is no longer ours (the
    sweeper took it back after our lease expired) and must not be sent.

    It leaves the lease to the keeper (notifier.delivery.lease), which extends it every third of the lease while
    the run makes progress: the mark then writes no indexed column, so PostgreSQL updates the row in place (a HOT
    update) instead of adding an entry to each of the outbox's indexes for every message. A lease about to expire
    when the mark is written is safe: once marked, the sweeper can only make the row `unknown`, never resend it.

    Outside a transaction the statement commits on its own: the mark is durable before the provider is called, and
    costs no other round trip. On PostgreSQL it is a prepared statement on the connection (psycopg prepares it
    after a few runs): the server parses and plans it once per connection instead of once per message.
    """
    connection, table = _sql()
    now = timezone.now()
    if connection.vendor == "postgresql":
        return run_prepared(connection, _take_turn_sql(table), [now, outbox_id, Status.SENDING.value, owner, now]) == 1
    stamp = _stamp(connection, now)
    with connection.cursor() as cursor:
        cursor.execute(_take_turn_sql(table), [stamp, outbox_id, Status.SENDING.value, owner, stamp])
        return bool(cursor.rowcount == 1)


class _PreparedCursor(psycopg.Cursor[Any]):
    """A psycopg cursor with server-side binding whose statements are prepared (Django's own cursors bind on the
    client and never prepare)."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)


def run_prepared(connection: Any, sql: str, params: list[Any]) -> int:
    """Run a statement of a fixed text as a prepared one (PostgreSQL); returns the row count."""
    connection.ensure_connection()
    raw = _PreparedCursor(connection.connection)
    # Django's wrapper around it: its exceptions, execute wrappers and query log, as for any other statement.
    wrapped = connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)
    with wrapped as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _take_turn_sql(table: str) -> str:
    # Parameters: the send's start, the id, `sending`, the owner token, now (the lease must not have expired).
    return (
        f"UPDATE {table} SET send_started_at = COALESCE(send_started_at, %s) "  # noqa: S608
        "WHERE id = %s AND status = %s AND lease_owner = %s AND lease_expires_at > %s"
    )


def extend(owner: str, outbox_ids: Sequence[int]) -> int:
    """Extend the leases `owner` still holds among these rows. Never waits for a row lock (a row being written at
    this moment is extended at the next tick, a third of a lease later). Returns the number extended."""
    ids = [int(outbox_id) for outbox_id in outbox_ids]
    if not ids:
        return 0
    connection, table = _sql()
    now = timezone.now()
    expires = _stamp(connection, now + timedelta(seconds=get_settings().delivery_lease_seconds))
    owned = "status = %s AND lease_owner = %s"
    if connection.vendor == "postgresql":
        select = f"SELECT id FROM {table} WHERE id = ANY(%s) AND {owned} FOR UPDATE SKIP LOCKED"  # noqa: S608
        sql = f"UPDATE {table} SET lease_expires_at = %s WHERE id IN ({select})"  # noqa: S608
        params: list[Any] = [expires, ids, Status.SENDING.value, owner]
    else:
        marks = ", ".join(["%s"] * len(ids))
        sql = f"UPDATE {table} SET lease_expires_at = %s WHERE id IN ({marks}) AND {owned}"  # noqa: S608
        params = [expires, *ids, Status.SENDING.value, owner]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


# --- the sweeper's side ------------------------------------------------------------------------------------------


def reclaim_expired(now: datetime | None = None) -> tuple[int, int]:
    """Rows `sending` whose lease has expired (their run died, was paused or hung): untried → pending (due now,
    the lease cleared), started → `unknown` (the owner token kept, so that a run that was only paused may still
    write the real outcome). Returns (queued again, made unknown).

    Started: marked in the database (`send_started_at`), or, for a run that keeps its marks in Redis, marked there
    (asked after fencing the run, so that it cannot start another row). When Redis has lost a run's marks every
    row of it counts as started; when Redis cannot be reached the run's rows wait for the next sweep.
    """
    now = now or timezone.now()
    legacy = timedelta(seconds=get_settings().delivery_lease_seconds)  # rows claimed before leases existed
    expired = Outbox.objects.filter(status=Status.SENDING).filter(
        Q(lease_expires_at__lt=now)
        | Q(lease_expires_at__isnull=True, claimed_at__lt=now - legacy)
        | Q(lease_expires_at__isnull=True, claimed_at__isnull=True)
    )
    found = list(expired.values_list("id", "lease_owner", "send_started_at"))
    started = {outbox_id for outbox_id, _owner, mark in found if mark is not None}
    waiting: set[int] = set()
    runs: dict[str, set[int]] = {}
    for outbox_id, owner, _mark in found:
        if owner.startswith(MARKS_IN_REDIS):
            runs.setdefault(owner, set()).add(outbox_id)
    for owner, ids in runs.items():
        try:
            marked = coordination.fence_run(owner)
        except redis.RedisError as exc:
            logger.warning("sweeper: cannot ask Redis what run %s started (%s); its rows wait", owner, exc)
            waiting |= ids
            continue
        started |= ids if marked is None else ids & marked
    settled = started | waiting
    untried = [outbox_id for outbox_id, _owner, _mark in found if outbox_id not in settled]
    queued = _update_ids(
        expired,
        untried,
        status=Status.PENDING,
        lease_owner="",
        lease_expires_at=None,
        next_attempt_at=now,
        last_error="its delivery run stopped before sending it; queued again",
        updated_at=now,
    )
    unknown = _update_ids(
        expired,
        sorted(started - waiting),
        status=Status.UNKNOWN,
        lease_expires_at=None,
        last_error="its delivery run stopped while sending it; outcome unknown",
        updated_at=now,
    )
    return queued, unknown


def _update_ids(rows: QuerySet[Outbox], ids: list[int], **values: Any) -> int:
    """UPDATE the rows among `rows` with these ids, _IDS_PER_STATEMENT ids per statement; returns the count."""
    return sum(
        rows.filter(pk__in=ids[start : start + _IDS_PER_STATEMENT]).update(**values)
        for start in range(0, len(ids), _IDS_PER_STATEMENT)
    )


def hand_out_due(limit: int, grace: timedelta, now: datetime | None = None) -> list[int]:
    """Pending rows that are due and that no delivery task carries, marked as handed out (`enqueued_at`), oldest
    due first. The caller enqueues them.

    Carried: rows handed out since they became due (within `grace`, in case that task was lost), and rows fresh
    from detection (never claimed nor resent) for `grace` after they became due, since their own task may still be
    in the queue. Everything else is handed out as soon as it is due: retries after a backoff, rows deferred by an
    open breaker or a rate limit, rows taken back from a dead run, rows an operator resent.
    """
    now = now or timezone.now()
    horizon = now - grace
    handed = Q(enqueued_at__isnull=False, enqueued_at__gte=F("next_attempt_at"), enqueued_at__gt=horizon)
    fresh = Q(enqueued_at__isnull=True, claimed_at__isnull=True, requeued_at__isnull=True, next_attempt_at__gt=horizon)
    due = (
        Outbox.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .exclude(handed | fresh)
        .order_by("next_attempt_at", "id")
    )
    with transaction.atomic(using=router.db_for_write(Outbox)):
        ids = list(due.select_for_update(skip_locked=True).values_list("id", flat=True)[:limit])
        Outbox.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids


# --- what a run loads ---------------------------------------------------------------------------------------------


def claimed_rows(outbox_ids: Sequence[int]) -> list[Outbox]:
    """The claimed rows, in the order of `outbox_ids`, with what rendering reads (policy, product, family, head)."""
    position = {outbox_id: index for index, outbox_id in enumerate(outbox_ids)}
    connection = connections[router.db_for_read(Outbox)]
    if connection.vendor == "postgresql":
        rows = _claimed_rows_sql(connection, list(outbox_ids))
    else:
        rows = list(
            Outbox.objects.filter(pk__in=list(outbox_ids)).select_related("policy__product", "family__head_insuree")
        )
    return sorted(rows, key=lambda row: position[row.pk])


# The rows and what rendering reads, as select_related("policy__product", "family__head_insuree") would load them:
# (alias, model, alias of the row it hangs from, its foreign key there).
_ROW_TABLES: tuple[tuple[str, type[Model], str | None, str | None], ...] = (
    ("o", Outbox, None, None),
    ("p", Policy, "o", "policy"),
    ("pr", Product, "p", "product"),
    ("f", Family, "o", "family"),
    ("h", Insuree, "f", "head_insuree"),
)


@dataclass(frozen=True)
class _RowPlan:
    """The fixed SELECT and how to cut its columns back into instances: per table (model, attnames, first and last
    column, the position of its pk in that span), and per join the foreign key linking table to table."""

    sql: str
    spans: tuple[tuple[type[Model], list[str], int, int, int], ...]
    links: tuple[tuple[int, int, ForeignKey[Any, Any]], ...]  # (table, the table it hangs from, that key)


_ROW_PLANS: dict[str, _RowPlan] = {}


def _row_plan(connection: Any) -> _RowPlan:
    """One SELECT of every column of the five tables, joined as Django joins them (INNER for a required foreign
    key, LEFT for a nullable one and below it), written once per database: Django compiles the same select_related
    query anew on every call (~3-5 ms of CPU a chunk; the statement itself is a fraction of that)."""
    found = _ROW_PLANS.get(connection.alias)
    if found is not None:
        return found
    quote = connection.ops.quote_name
    position = {alias: index for index, (alias, _model, _parent, _name) in enumerate(_ROW_TABLES)}
    columns: list[str] = []
    joins: list[str] = []
    left: set[str] = set()
    spans: list[tuple[type[Model], list[str], int, int, int]] = []
    links: list[tuple[int, int, ForeignKey[Any, Any]]] = []
    for alias, model, parent, name in _ROW_TABLES:
        names = [field.attname for field in model._meta.concrete_fields]
        spans.append((model, names, len(columns), len(columns) + len(names), names.index(model._meta.pk.attname)))
        columns += [f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields]
        if parent is None or name is None:
            continue
        key = _ROW_TABLES[position[parent]][1]._meta.get_field(name)
        assert isinstance(key, ForeignKey)
        links.append((position[alias], position[parent], key))
        if key.null or parent in left:
            left.add(alias)
        kind = "LEFT OUTER JOIN" if alias in left else "INNER JOIN"
        on = f"{alias}.{quote(key.target_field.column)} = {parent}.{quote(key.column)}"
        joins.append(f"{kind} {quote(model._meta.db_table)} {alias} ON {on}")
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(Outbox._meta.db_table)} o {' '.join(joins)} "  # noqa: S608
        f"WHERE o.{quote(Outbox._meta.pk.column)} = ANY(%s)"
    )
    plan = _ROW_PLANS[connection.alias] = _RowPlan(sql, tuple(spans), tuple(links))
    return plan


def _claimed_rows_sql(connection: Any, outbox_ids: list[int]) -> list[Outbox]:
    """claimed_rows on PostgreSQL: the fixed SELECT, and model instances made from its columns as Django makes
    them (no field of these models converts its database value there), each related one cached on its row as
    select_related caches it."""
    plan = _row_plan(connection)
    with connection.cursor() as cursor:
        _native_timestamps(connection, cursor)
        cursor.execute(plan.sql, [outbox_ids])
        fetched = cursor.fetchall()
    alias = connection.alias
    rows: list[Outbox] = []
    for values in fetched:
        made: list[Model | None] = []
        for model, names, first, last, pk_at in plan.spans:
            part = values[first:last]
            made.append(None if part[pk_at] is None else _loaded(model, alias, names, part))
        for child, parent, key in plan.links:
            holder = made[parent]
            if holder is not None:
                key.set_cached_value(holder, made[child])
        row = made[0]
        assert isinstance(row, Outbox)
        rows.append(row)
    return rows


def _loaded(model: type[Model], alias: str, names: list[str], values: tuple[Any, ...]) -> Model:
    """`model.from_db(alias, names, values)` for a row of every concrete field: what Model.__init__ leaves (each
    attname in the instance's __dict__, a fresh ModelState, loaded from `alias`) without its per-field work, ~12 µs
    a model, five models a claimed row. Through from_db itself whenever a pre_init or post_init receiver listens."""
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return model.from_db(alias, names, values)
    instance = model.__new__(model)
    instance.__dict__.update(zip(names, values, strict=True))
    state = instance._state = ModelState()
    state.adding, state.db = False, alias
    return instance


def _native_timestamps(connection: Any, cursor: Any) -> None:
    """Read `timestamptz` columns with psycopg's own loader (C) on this cursor. Django registers a subclass of the
    pure-Python loader that only swaps the tzinfo for its connection's zone: 18 timestamps a claimed row, ~65 µs of
    CPU a row. The values are the same instants: Django keeps the session's TimeZone at that zone (UTC unless the
    database's TIME_ZONE says otherwise), and psycopg reads them in the session's zone."""
    if connection.timezone_name == "UTC":  # psycopg's zone for UTC is datetime.timezone.utc, as Django's
        cursor.cursor.adapters.register_loader("timestamptz", psycopg.types.datetime.TimestamptzLoader)


def _column(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column is not None
    return str(field.column)


def enabled_accounts() -> list[ProviderAccount]:
    # A raw SELECT: the ORM would compile the same query for every chunk.
    connection = connections[router.db_for_read(ProviderAccount)]
    quote, meta = connection.ops.quote_name, ProviderAccount._meta
    enabled, priority = (quote(_column(ProviderAccount, name)) for name in ("enabled", "priority"))
    sql = f"SELECT * FROM {quote(meta.db_table)} WHERE {enabled} = %s ORDER BY {priority}, {quote(meta.pk.column)}"  # noqa: S608
    return list(ProviderAccount.objects.raw(sql, [True]))


def refused_accounts(requeued: dict[int, datetime | None]) -> dict[int, set[int]]:
    """outbox id -> accounts that failed it permanently since it was last resent (`requeued`: id -> resent at)."""
    refused: dict[int, set[int]] = {}
    for outbox_id, account_id, started_at in _permanent_failures(list(requeued)):
        since = requeued[outbox_id]
        if account_id is not None and (since is None or started_at >= since):
            refused.setdefault(outbox_id, set()).add(account_id)
    return refused


def _permanent_failures(outbox_ids: list[int]) -> list[tuple[int, int | None, datetime]]:
    connection = connections[router.db_for_read(DeliveryAttempt)]
    if connection.vendor != "postgresql":  # SQLite's datetimes need Django's converters
        return list(
            DeliveryAttempt.objects.filter(
                outbox_id__in=outbox_ids, outcome=DeliveryAttempt.Outcome.PERMANENT
            ).values_list("outbox_id", "provider_account_id", "started_at")
        )
    quote, meta = connection.ops.quote_name, DeliveryAttempt._meta
    outbox, account, started, outcome = (
        quote(_column(DeliveryAttempt, name)) for name in ("outbox", "provider_account", "started_at", "outcome")
    )
    sql = f"SELECT {outbox}, {account}, {started} FROM {quote(meta.db_table)} "  # noqa: S608
    sql += f"WHERE {outbox} = ANY(%s) AND {outcome} = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [outbox_ids, DeliveryAttempt.Outcome.PERMANENT.value])
        return [(int(a), b, c) for a, b, c in cursor.fetchall()]


# --- what a run writes --------------------------------------------------------------------------------------------


def release(outbox_ids: Sequence[int], owner: str, retry_at: datetime, error: str) -> None:
    """Claimed rows of a run that failed before anything was tried: back to pending, due at `retry_at`."""
    Outbox.objects.filter(pk__in=list(outbox_ids), status=Status.SENDING, lease_owner=owner).update(
        status=Status.PENDING,
        lease_owner="",
        lease_expires_at=None,
        last_error=error,
        next_attempt_at=retry_at,
        updated_at=timezone.now(),
    )
