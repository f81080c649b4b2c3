"""The SQL floor of bench/detect.py.

What the engine's writes cost at the least: per type ONE hand-written INSERT ... SELECT (plain joins for consent
and phone, the type's conditions, the rule of `decide` as a CASE) writing the same outbox rows and decisions as the
engine, with no Python per row and no ORM. Run on an emptied state like the engine; its written rows must equal
the engine's (per type: outbox rows, decisions by outcome and reason), or the ratio would be meaningless.

"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from bench._common import cpu_seconds, peak_rss_mb
from notifier.types import NOTIFICATION_TYPES as TYPES

_STATUS_ACTIVE, _STATUS_EXPIRED = 2, 8

_FLOOR_SQL = """
WITH c AS MATERIALIZED (
    SELECT p."PolicyID" AS policy_id, p."FamilyID" AS family_id, p."EffectiveDate" AS effective_date,
           {event} AS event_date, s."ApprovalOfSMS" AS approved, COALESCE(s."LanguageOfSMS", '') AS language,
           ph.phone AS recipient,
           EXISTS (SELECT 1 FROM notifier_consent_change x
                   WHERE x.family_id = p."FamilyID" AND x.source = 'inbound_sms' AND x.action = 'withdrawn'
                     AND x.changed_at >= s."ValidityFrom") AS opted_out
    FROM "tblPolicy" p
    JOIN "tblFamilies" f ON f."FamilyID" = p."FamilyID" AND f."ValidityTo" IS NULL
    {product}
    LEFT JOIN "tblFamilySMS" s ON s."FamilyID" = p."FamilyID" AND s."ValidityTo" IS NULL
    LEFT JOIN notifier_family_phone ph ON ph.family_id = p."FamilyID"
    WHERE p."ValidityTo" IS NULL AND {condition}
      AND NOT EXISTS (SELECT 1 FROM notifier_outbox o
                      WHERE o.policy_id = p."PolicyID" AND o.notification_type = %(type)s)
), d AS MATERIALIZED (
    SELECT c.*, CASE {superseded}
        WHEN c.approved IS NOT TRUE AND c.opted_out THEN 'opted_out'
        WHEN c.approved IS NOT TRUE THEN 'no_consent'
        WHEN COALESCE(c.recipient, '') = '' THEN 'no_valid_phone'
        ELSE '' END AS reason
    FROM c
), queued AS (
    INSERT INTO notifier_outbox (notification_type, event_date, recipient, language, text, encoding, segments,
        status, attempts, next_attempt_at, provider_reference, last_error, created_at, updated_at, family_id,
        policy_id, lease_owner, receipt_reason, receipt_status)
    SELECT %(type)s, event_date, recipient, language, '', '', 0, 'pending', 0, %(now)s, '', '', %(now)s, %(now)s,
           family_id, policy_id, '', '', ''
    FROM d WHERE reason = '' ORDER BY policy_id
    ON CONFLICT DO NOTHING
)
INSERT INTO notifier_decision (notification_type, event_date, outcome, reason, first_evaluated_at,
    last_evaluated_at, policy_id)
SELECT %(type)s, event_date, CASE WHEN reason = '' THEN 'queued' ELSE 'skipped' END, reason, %(now)s, %(now)s,
       policy_id
FROM d
ON CONFLICT (policy_id, notification_type) DO UPDATE SET event_date = EXCLUDED.event_date,
    outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, last_evaluated_at = EXCLUDED.last_evaluated_at
"""


def floor_statement(notification_type: str, day: dt.date) -> tuple[str, dict[str, Any]]:
    """The hand-written statement for one type on `day` (the engine's due window, all six types enabled)."""
    from django.conf import settings

    from notifier.settings import get_config

    config = get_config()
    first = day - dt.timedelta(days=config.max_delay(notification_type))
    params: dict[str, Any] = {"type": notification_type, "first": first, "last": day, "tz": settings.TIME_ZONE}
    params["now"] = dt.datetime.now(dt.UTC)
    product = superseded = ""
    if notification_type in ("activation_of_policy", "renewal_of_policy"):
        event = 'CAST(p."ValidityFrom" AT TIME ZONE %(tz)s AS date)'
        stage = "N" if notification_type == "activation_of_policy" else "R"
        condition = (
            f'p."PolicyStage" = \'{stage}\' AND p."PolicyStatus" = {_STATUS_ACTIVE} '
            'AND p."ValidityFrom" >= CAST(%(first)s AS timestamp) AT TIME ZONE %(tz)s '
            "AND p.\"ValidityFrom\" < CAST(%(last)s AS timestamp) AT TIME ZONE %(tz)s + interval '1 day'"
        )
        if notification_type == "activation_of_policy":
            superseded = "WHEN c.effective_date = c.event_date THEN 'superseded_by_starting'"
    elif notification_type == "starting_of_policy":
        event = 'p."EffectiveDate"'
        condition = f'p."PolicyStatus" = {_STATUS_ACTIVE} AND p."EffectiveDate" BETWEEN %(first)s AND %(last)s'
    else:
        offset = {
            "need_for_renewal": -config.reminder_before_expiry_days,
            "expiration_of_policy": 0,
            "reminder_after_expiration": config.reminder_after_expiry_days,
        }[notification_type]
        params.update(offset=offset, expiry_first=first - dt.timedelta(days=offset))
        params["expiry_last"] = day - dt.timedelta(days=offset)
        event = 'p."ExpiryDate" + CAST(%(offset)s AS integer)'
        product = 'JOIN "tblProduct" pr ON pr."ProdID" = p."ProdID"'
        condition = (
            f'p."PolicyStatus" IN ({_STATUS_ACTIVE}, {_STATUS_EXPIRED}) '
            'AND p."ExpiryDate" BETWEEN %(expiry_first)s AND %(expiry_last)s '
            'AND NOT EXISTS (SELECT 1 FROM "tblPolicy" r WHERE r."ValidityTo" IS NULL AND r."FamilyID" = p."FamilyID" '
            'AND r."StartDate" > p."ExpiryDate" AND (r."ProdID" = p."ProdID" OR r."ProdID" = pr."ConversionProdID") '
            'AND r."PolicyID" <> p."PolicyID")'
        )
    sql = _FLOOR_SQL.format(event=event, product=product, condition=condition, superseded=superseded)
    return sql, params


def run_floor(day: dt.date) -> dict[str, Any]:
    """The six hand-written statements, each in its own transaction like the engine's runs."""
    from django.db import connection, transaction

    cpu_before = cpu_seconds()
    started = time.perf_counter()
    for notification_type in TYPES:
        sql, params = floor_statement(notification_type, day)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "queries": len(TYPES),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def written_rows() -> dict[str, dict[str, int]]:
    """Per type: outbox rows and decisions by outcome/reason, as written (to compare the engine with the floor)."""
    from django.db import connection

    written: dict[str, dict[str, int]] = {name: {} for name in TYPES}
    with connection.cursor() as cursor:
        cursor.execute("SELECT notification_type, count(*) FROM notifier_outbox GROUP BY 1")
        for notification_type, count in cursor.fetchall():
            written[notification_type]["outbox"] = count
        cursor.execute("SELECT notification_type, outcome, reason, count(*) FROM notifier_decision GROUP BY 1, 2, 3")
        for notification_type, outcome, reason, count in cursor.fetchall():
            written[notification_type][f"{outcome}/{reason}" if reason else outcome] = count
    return written
