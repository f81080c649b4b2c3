"""Detection benchmark: our engine against an upstream-style baseline, on the same database and day.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notifier_bench .venv/bin/python bench/detect.py --date 2026-11-28

Both run in their own child process (clean peak RSS), with all six types enabled, after the notifier's state
(outbox, decisions, detection runs, attempts) has been emptied, so the engine makes a first run (no obsolete scan).

**Engine**: `notifier.detection.run_all_detection(date)` for the six types, writing outbox rows and decisions as
in production. Reported: wall time, CPU time, SQL statements, peak RSS, per type the candidates in its due window
(queued / skipped by reason).

**Baseline** (what the upstream module does, SPEC §13 items 7 and 8, rebuilt on our models):
- exact-date triggers: only event date == the day is looked at, no catch-up window;
- activation / renewal: current policies (stage not R / stage R) whose current row became valid that day, *whatever
  their status*, kept when the history row valid at the start of the day had another status or there is none
  (upstream's "did the value change"); ours: active now and the newest history row (the version before) was not
  active, or there is none (an edit of an active policy is no activation);
- starting: current active policies with EffectiveDate == the day;
- need_for_renewal / expiration / reminder_after: current policies with ExpiryDate == day + 5 / day / day - 5,
  *whatever their status*, iterated as model instances; for each one the product is loaded (lazy foreign key, as
  upstream's conversion lookup does) and ONE renewal query fetches the family's policies starting after the expiry.
  Upstream counts as renewal any row of the same product (its conversion lookup only follows a product *without*
  a conversion, so never), history and deleted rows included;
- eligibility per candidate, ONE query each (upstream validates policy by policy): the family's consent row and
  its phone (notifier_family_phone: the same phone rule as ours).
From the same rows the baseline derives two sets: what upstream would send, and the *corrected* set, the same
exact-date candidates with our rules (status active/expired, current family, renewal = another current policy of
the same product or its conversion product; starting supersedes a same-day activation). The corrected set must
equal exactly our engine's decisions whose event date is the day; the upstream set's differences are counted and
explained (SPEC §13 item 8). With --baseline-sample N, only N randomly chosen (seeded) expiring policies per
expiry type are checked and the baseline's time for them is extrapolated to all of them; the report says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, cpu_seconds, machine, peak_rss_mb, setup_django, write_results
from notifier.types import NOTIFICATION_TYPES

TYPES = NOTIFICATION_TYPES
EXPIRY_TYPES = ("need_for_renewal", "expiration_of_policy", "reminder_after_expiration")
ALL_ENABLED = {"eligibleNotificationTypes": dict.fromkeys(TYPES, True)}
NOTIFIER_STATE_TABLES = ("notifier_delivery_attempt", "notifier_outbox", "notifier_decision", "notifier_detection_run")


@contextmanager
def count_queries() -> Iterator[Counter[str]]:
    """Count the SQL statements Django sends while the block runs (counts['total'])."""
    from django.db import connection

    counts: Counter[str] = Counter()

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        counts["total"] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield counts


# --- engine ------------------------------------------------------------------------------------------------------


def run_engine(day: dt.date) -> dict[str, Any]:
    """Our detection for the six types on `day`; figures only (the decisions stay in the database)."""
    from notifier.detection import run_all_detection

    cpu_before = cpu_seconds()
    started = time.perf_counter()
    with count_queries() as queries:
        results = run_all_detection(day, types=list(TYPES))
    seconds = time.perf_counter() - started
    per_type = {
        result.notification_type: {
            "window": [result.window_start.isoformat(), result.window_end.isoformat()],
            "queued": result.queued,
            "skipped": result.skipped,
            "candidates": result.queued + sum(result.skipped.values()),
        }
        for result in results
    }
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "queries": queries["total"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "types": per_type,
    }


def engine_decisions(day: dt.date) -> dict[str, dict[str, list[int]]]:
    """Per type, the engine's candidates with event date == day (all decisions) and the queued ones."""
    from notifier.models import Decision

    sets: dict[str, dict[str, list[int]]] = {name: {"candidates": [], "queued": []} for name in TYPES}
    rows = Decision.objects.filter(event_date=day).values_list("notification_type", "policy_id", "outcome")
    for notification_type, policy_id, outcome in rows.iterator():
        sets[notification_type]["candidates"].append(policy_id)
        if outcome == Decision.Outcome.QUEUED:
            sets[notification_type]["queued"].append(policy_id)
    return sets


# --- baseline ----------------------------------------------------------------------------------------------------


class _Baseline:
    """The upstream-style detection (module docstring). Collects both the upstream and the corrected verdicts."""

    def __init__(self, day: dt.date, sample: int | None, seed: int) -> None:
        from notifier.settings import get_config

        self.day = day
        self.sample = sample
        self.rng = random.Random(seed)
        self.config = get_config()
        self.eligibility_cache_hits = 0
        self.types: dict[str, dict[str, Any]] = {}

    def _eligibility(self, family_id: int) -> tuple[bool, bool, bool]:
        """(family is current, consent approves, has a valid phone): one query, as upstream's per-policy check."""
        from notifier.models import Family

        row = (
            Family.objects.filter(pk=family_id)
            .values("validity_to", "notification__approval_of_sms", "notification__validity_to", "sms_phone__phone")
            .first()
        )
        if row is None:
            return False, False, False
        approved = bool(row["notification__approval_of_sms"]) and row["notification__validity_to"] is None
        return row["validity_to"] is None, approved, bool(row["sms_phone__phone"])

    def _record(
        self,
        notification_type: str,
        candidates: list[dict[str, Any]],
        examined: int,
        total: int,
    ) -> None:
        upstream_sent, corrected_candidates, corrected_queued = [], [], []
        differences: Counter[str] = Counter()
        for candidate in candidates:
            current_family, approved, phone = self._eligibility(candidate["family_id"])
            candidate_upstream = candidate["upstream"]
            candidate_corrected = candidate["corrected"] and current_family
            if candidate_upstream and approved and phone:
                upstream_sent.append(candidate["id"])
            if candidate_corrected:
                corrected_candidates.append(candidate["id"])
                superseded = notification_type == "activation_of_policy" and candidate["effective_date"] == self.day
                if approved and phone and not superseded:
                    corrected_queued.append(candidate["id"])
            if candidate_upstream != candidate_corrected:
                differences[candidate.get("why") or ("deleted family" if not current_family else "other")] += 1
        self.types[notification_type] = {
            "examined": examined,
            "total": total,
            "upstream_sent": upstream_sent,
            "corrected_candidates": corrected_candidates,
            "corrected_queued": corrected_queued,
            "upstream_vs_corrected": dict(differences),
            "upstream_candidates": [candidate["id"] for candidate in candidates if candidate["upstream"]],
        }

    def activation_like(self, notification_type: str) -> None:
        from notifier.detection import day_start
        from notifier.models import Policy

        started = time.perf_counter()
        with count_queries() as queries:
            start, end = day_start(self.day), day_start(self.day + dt.timedelta(days=1))
            # Upstream looks at every current row that became valid in the period, whatever its status, and keeps
            # those whose status differs from the history row valid at the period's start (or that have none).
            policies = Policy.objects.filter(validity_to__isnull=True, validity_from__gte=start, validity_from__lt=end)
            if notification_type == "renewal_of_policy":
                policies = policies.filter(stage=Policy.Stage.RENEWAL)
            else:
                policies = policies.exclude(stage=Policy.Stage.RENEWAL)
            rows = list(policies.values("id", "family_id", "effective_date", "stage", "status"))
            before = {
                legacy_id: status
                for legacy_id, status in Policy.objects.filter(
                    legacy_id__in=[row["id"] for row in rows], validity_from__lte=start, validity_to__gte=start
                )
                .order_by("legacy_id", "id")
                .values_list("legacy_id", "status")
            }
            # Ours (SPEC §4): active now, and the newest history row (the version before) was not active or none.
            previous = {
                legacy_id: status
                for legacy_id, status in Policy.objects.filter(
                    legacy_id__in=[row["id"] for row in rows], validity_to__isnull=False
                )
                .order_by("legacy_id", "validity_to", "id")
                .values_list("legacy_id", "status")
            }  # the last one per policy wins: the newest
            candidates = []
            for row in rows:
                changed = before.get(row["id"]) != row["status"]
                corrected = row["status"] == Policy.Status.ACTIVE and previous.get(row["id"]) != Policy.Status.ACTIVE
                why = None
                if changed and not corrected:
                    why = f"status {Policy.Status(row['status']).label.lower() if row['status'] else None} not ignored"
                    if row["status"] == Policy.Status.ACTIVE:
                        why = "edited while active"
                elif corrected and not changed:
                    why = "status did not change"
                candidates.append({**row, "upstream": changed, "corrected": corrected, "why": why})
            self._record(notification_type, candidates, len(rows), len(rows))
        self.types[notification_type]["seconds"] = time.perf_counter() - started
        self.types[notification_type]["queries"] = queries["total"]

    def starting(self) -> None:
        from notifier.models import Policy

        started = time.perf_counter()
        with count_queries() as queries:
            rows = list(
                Policy.objects.filter(
                    validity_to__isnull=True, status=Policy.Status.ACTIVE, effective_date=self.day
                ).values("id", "family_id", "effective_date")
            )
            candidates = [{**row, "upstream": True, "corrected": True, "why": None} for row in rows]
            self._record("starting_of_policy", candidates, len(rows), len(rows))
        self.types["starting_of_policy"]["seconds"] = time.perf_counter() - started
        self.types["starting_of_policy"]["queries"] = queries["total"]

    def expiring(self, notification_type: str) -> None:
        from notifier.models import Policy

        offset = {
            "need_for_renewal": self.config.reminder_before_expiry_days,
            "expiration_of_policy": 0,
            "reminder_after_expiration": -self.config.reminder_after_expiry_days,
        }[notification_type]
        expiry_date = self.day + dt.timedelta(days=offset)
        renewal_date = expiry_date + dt.timedelta(days=1)
        started = time.perf_counter()
        with count_queries() as queries:
            expiring = list(Policy.objects.filter(validity_to__isnull=True, expiry_date=expiry_date))
            total = len(expiring)
            if self.sample is not None and total > self.sample:
                expiring = self.rng.sample(expiring, self.sample)
            candidates = []
            for policy in expiring:
                product = policy.product  # a query per policy, as upstream's conversion lookup
                later = list(
                    Policy.objects.filter(family_id=policy.family_id, start_date__gte=renewal_date).values_list(
                        "id", "product_id", "validity_to"
                    )
                )
                upstream_renewed = any(product_id == policy.product_id for _id, product_id, _to in later)
                renewing_products = {policy.product_id, product.conversion_product_id}
                corrected_renewed = any(
                    validity_to is None and other_id != policy.id and product_id in renewing_products
                    for other_id, product_id, validity_to in later
                )
                status_ok = policy.status in (Policy.Status.ACTIVE, Policy.Status.EXPIRED)
                why = None
                if not status_ok:
                    why = f"status {Policy.Status(policy.status).label.lower() if policy.status else None} not ignored"
                elif upstream_renewed and not corrected_renewed:
                    why = "renewal only in a history or deleted row"
                elif corrected_renewed and not upstream_renewed:
                    why = "renewed into the conversion product"
                candidates.append(
                    {
                        "id": policy.id,
                        "family_id": policy.family_id,
                        "effective_date": policy.effective_date,
                        "upstream": not upstream_renewed,
                        "corrected": status_ok and not corrected_renewed,
                        "why": why,
                    }
                )
            self._record(notification_type, candidates, len(expiring), total)
            if len(expiring) < total:
                self.types[notification_type]["examined_ids"] = [policy.id for policy in expiring]
        self.types[notification_type]["seconds"] = time.perf_counter() - started
        self.types[notification_type]["queries"] = queries["total"]


def _run_type(baseline: _Baseline, notification_type: str) -> dict[str, Any]:
    if notification_type in EXPIRY_TYPES:
        baseline.expiring(notification_type)
    elif notification_type == "starting_of_policy":
        baseline.starting()
    else:
        baseline.activation_like(notification_type)
    figures = baseline.types[notification_type]
    examined, total = figures["examined"], figures["total"]
    figures["extrapolated_seconds"] = figures["seconds"] * (total / examined) if examined else figures["seconds"]
    return figures


def run_baseline(
    day: dt.date, sample: int | None = None, seed: int = 1, *, cover_windows: bool = False
) -> dict[str, Any]:
    """The baseline for `day`; with cover_windows also for every earlier day of each type's due window (the
    runs upstream would need to make to cover what one engine run covers), timed but not compared."""
    baseline = _Baseline(day, sample, seed)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    for notification_type in TYPES:
        _run_type(baseline, notification_type)
    seconds = time.perf_counter() - started
    extrapolated = sum(figures["extrapolated_seconds"] for figures in baseline.types.values())
    result: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "extrapolated_seconds": round(extrapolated, 3),
        "sampled": any(f["examined"] < f["total"] for f in baseline.types.values()),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "queries": sum(f["queries"] for f in baseline.types.values()),
        "types": baseline.types,
    }
    if cover_windows:
        window_seconds, window_queries = extrapolated, result["queries"]
        for notification_type in TYPES:
            for back in range(1, baseline.config.max_delay(notification_type) + 1):
                earlier = _Baseline(day - dt.timedelta(days=back), sample, seed)
                figures = _run_type(earlier, notification_type)
                window_seconds += figures["extrapolated_seconds"]
                window_queries += figures["queries"]
        result["window_seconds"] = round(window_seconds, 3)
        result["window_queries"] = window_queries
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


# --- comparison ----------------------------------------------------------------------------------------------------


def compare(engine_sets: dict[str, dict[str, list[int]]], baseline: dict[str, Any]) -> dict[str, Any]:
    """Per type: set sizes and agreement of the corrected baseline with the engine's same-day decisions."""
    agreement: dict[str, Any] = {}
    for notification_type in TYPES:
        figures = baseline["types"][notification_type]
        ours_candidates = set(engine_sets[notification_type]["candidates"])
        ours_queued = set(engine_sets[notification_type]["queued"])
        sampled = figures["examined"] < figures["total"]
        corrected_candidates = set(figures["corrected_candidates"])
        corrected_queued = set(figures["corrected_queued"])
        upstream_sent = set(figures["upstream_sent"])
        if sampled:  # only the sampled policies can be compared
            examined = set(figures["examined_ids"])
            ours_candidates &= examined
            ours_queued &= examined
        agreement[notification_type] = {
            "engine_same_day_candidates": len(ours_candidates),
            "baseline_corrected_candidates": len(corrected_candidates),
            "candidates_only_in_engine": sorted(ours_candidates - corrected_candidates)[:20],
            "candidates_only_in_baseline": sorted(corrected_candidates - ours_candidates)[:20],
            "engine_same_day_queued": len(ours_queued),
            "baseline_corrected_queued": len(corrected_queued),
            "queued_only_in_engine": sorted(ours_queued - corrected_queued)[:20],
            "queued_only_in_baseline": sorted(corrected_queued - ours_queued)[:20],
            "agree": ours_candidates == corrected_candidates and ours_queued == corrected_queued,
            "upstream_would_send": len(upstream_sent),
            "upstream_not_in_engine": len(upstream_sent - ours_queued),
            "engine_not_in_upstream": len(ours_queued - upstream_sent),
            "upstream_vs_corrected_candidates": figures["upstream_vs_corrected"],
        }
    return agreement


# --- upstream's live code paths ----------------------------------------------------------------------------------
#
# What upstream's scheduled task runs, rather than the exact-date triggers above (SPEC §13; the module's
# notification_triggers.py and notification_dispatcher.py):
# - activation and renewal do not look at a day at all: every run reads ALL current active policies (stage not R /
#   stage R) with their family, consent and head, drops those its indication table marks as notified (nothing on a
#   first run) and compares each with its history row valid at a fixed old date (none: "changed"), so a first run
#   messages every active policy of the scheme;
# - starting and the three expiry types: the exact-date queries above (an expiring policy costs a product load and a
#   renewal query);
# - eligibility in chunks of 1,000 policy ids, one query each (consent approved and a phone);
# - per message it writes its indication row (insert or update) and one indication-details row;
# - the whole cycle runs once per configured provider (two here: the eGA gateway and a fallback), so each of
#   these messages would be sent once per provider.
# Reads are run in full, once per provider; the two writes per message are timed on `write_sample` messages into
# temporary tables and extrapolated. Messages are counted: what upstream sends on a first run, how many of them
# our rules would not send on this day (not due: activated or renewed on another day, expired, renewed), and the
# repeats caused by the per-provider loop.

UPSTREAM_PROVIDERS = 2
UPSTREAM_ELIGIBILITY_CHUNK = 1000


def _eligible_in_chunks(policy_ids: list[int]) -> tuple[list[int], int]:
    """Upstream's eligibility: one query per 1,000 policy ids. Returns (eligible ids, queries)."""
    from django.db.models import Q

    from notifier.models import Policy

    eligible: list[int] = []
    queries = 0
    for start in range(0, len(policy_ids), UPSTREAM_ELIGIBILITY_CHUNK):
        chunk = policy_ids[start : start + UPSTREAM_ELIGIBILITY_CHUNK]
        eligible += list(
            Policy.objects.filter(pk__in=chunk)
            .filter(Q(family__notification__approval_of_sms=True), family__notification__validity_to__isnull=True)
            .exclude(family__sms_phone__phone__isnull=True)
            .exclude(family__sms_phone__phone="")
            .values_list("id", flat=True)
        )
        queries += 1
    return eligible, queries


def _time_upstream_writes(messages: int, write_sample: int) -> tuple[float, int]:
    """Seconds and statements for upstream's two writes per message, timed on a sample, extrapolated."""
    from django.db import connection

    sample = min(messages, write_sample)
    if sample == 0:
        return 0.0, 0
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_indication (policy_id integer PRIMARY KEY, notified_at timestamptz)"
        )
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_indication_details (id bigserial PRIMARY KEY, policy_id integer, "
            "notification_type varchar(40), status integer, details text, validity_from timestamptz)"
        )
        started = time.perf_counter()
        for policy_id in range(sample):  # autocommitted, one statement each, as upstream's save() calls
            cursor.execute(
                "INSERT INTO bench_indication VALUES (%s, now()) "
                "ON CONFLICT (policy_id) DO UPDATE SET notified_at = EXCLUDED.notified_at",
                [policy_id],
            )
            cursor.execute(
                "INSERT INTO bench_indication_details (policy_id, notification_type, status, details, validity_from) "
                "VALUES (%s, %s, 1, NULL, now())",
                [policy_id, "activation_of_policy"],
            )
        seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_indication, bench_indication_details")
    return seconds * messages / sample, 2 * messages


def run_upstream_live(day: dt.date, write_sample: int = 2000) -> dict[str, Any]:
    """Upstream's live paths on a first run (see above): per type the messages it sends and the time it takes."""
    from notifier.models import Policy

    cpu_before = cpu_seconds()
    started = time.perf_counter()
    same_day = _Baseline(day, None, 1)
    types: dict[str, Any] = {}
    for notification_type in TYPES:
        read_seconds = 0.0
        queries = 0
        sent: list[int] = []
        scanned = 0
        for _provider in range(UPSTREAM_PROVIDERS):
            clock = time.perf_counter()
            with count_queries() as counted:
                if notification_type in ("activation_of_policy", "renewal_of_policy"):
                    active = Policy.objects.filter(validity_to__isnull=True, status=Policy.Status.ACTIVE)
                    if notification_type == "renewal_of_policy":
                        active = active.filter(stage=Policy.Stage.RENEWAL)
                    else:
                        active = active.exclude(stage=Policy.Stage.RENEWAL)
                    rows = list(
                        active.select_related("family__head_insuree").values_list(
                            "id", "family__head_insuree__chf_id", "family_id"
                        )
                    )
                    ids = [row[0] for row in rows]
                    # The history rows valid at the fixed "unsuccessful attempt" date: none, so every row "changed".
                    list(
                        Policy.objects.filter(
                            legacy_id__in=active.values("id"),
                            validity_from__lte=dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
                            validity_to__gte=dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
                        ).values_list("legacy_id", "status")
                    )
                else:
                    if notification_type not in same_day.types:
                        _run_type(same_day, notification_type)
                    ids = list(same_day.types[notification_type]["upstream_candidates"])
                scanned = len(ids)
                sent, _queries = _eligible_in_chunks(ids)
            read_seconds += time.perf_counter() - clock
            queries += counted["total"]
        if notification_type not in ("activation_of_policy", "renewal_of_policy"):
            # The exact-date scan ran once above (it is deterministic); each provider's cycle repeats it.
            read_seconds += same_day.types[notification_type]["seconds"] * (UPSTREAM_PROVIDERS - 1)
            queries += same_day.types[notification_type]["queries"] * (UPSTREAM_PROVIDERS - 1)
        write_seconds, write_queries = _time_upstream_writes(len(sent) * UPSTREAM_PROVIDERS, write_sample)
        types[notification_type] = {
            "scanned": scanned,
            "sent": sent,
            "messages": len(sent) * UPSTREAM_PROVIDERS,
            "provider_repeats": len(sent) * (UPSTREAM_PROVIDERS - 1),
            "seconds": round(read_seconds + write_seconds, 3),
            "write_seconds_extrapolated": round(write_seconds, 3),
            "queries": queries + write_queries,
        }
    return {
        "providers": UPSTREAM_PROVIDERS,
        "seconds": round(sum(figures["seconds"] for figures in types.values()), 3),
        "measured_seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(cpu_seconds() - cpu_before, 3),
        "queries": sum(figures["queries"] for figures in types.values()),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "types": types,
    }


# --- the SQL floor -----------------------------------------------------------------------------------------------
#
# What the engine's writes cost at the least: per type ONE hand-written INSERT ... SELECT (plain joins for consent
# and phone, the type's conditions, the rule of `decide` as a CASE) writing the same outbox rows and decisions as the
# engine, with no Python per row and no ORM. Run on an emptied state like the engine; its written rows must equal
# the engine's (per type: outbox rows, decisions by outcome and reason), or the ratio would be meaningless.

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


def compare_live(live: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per type: messages the engine queued, messages upstream's live paths would send on a first run, how many of
    those our rules would not send now (not due on this day, not active, renewed, ...) and the per-provider repeats.
    The engine's outbox must hold its rows (run it last of the writers). Drops the id lists from `live`."""
    from notifier.models import Outbox

    queued: dict[str, set[int]] = {name: set() for name in TYPES}
    for notification_type, policy_id in Outbox.objects.values_list("notification_type", "policy_id").iterator():
        queued[notification_type].add(policy_id)
    comparison: dict[str, dict[str, int]] = {}
    for notification_type, figures in live["types"].items():
        sent = set(figures.pop("sent"))
        comparison[notification_type] = {
            "engine_queued": len(queued[notification_type]),
            "upstream_messages": figures["messages"],
            "upstream_not_due": len(sent - queued[notification_type]),
            "upstream_provider_repeats": figures["provider_repeats"],
            "engine_queued_upstream_misses": len(queued[notification_type] - sent),
        }
    return comparison


# --- orchestration ---------------------------------------------------------------------------------------------


def reset_notifier_state() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses tables with deferred checks pending
        cursor.execute(f"TRUNCATE {', '.join(NOTIFIER_STATE_TABLES)} RESTART IDENTITY CASCADE")


def warm_up() -> None:
    """Read the tables once so that neither side pays for a cold cache."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("tblPolicy", "tblFamilies", "tblFamilySMS", "tblProduct", "notifier_family_phone"):
            cursor.execute(f'SELECT count(*) FROM "{table}"')


def _child(role: str, day: dt.date, out: str, sample: int | None, seed: int, cover_windows: bool) -> int:
    os.environ["NOTIFIER_CONFIG"] = json.dumps(ALL_ENABLED)
    setup_django()
    if role == "floor":
        figures = run_floor(day)
    elif role == "live":
        figures = run_upstream_live(day)
    elif role == "engine":
        figures = run_engine(day)
    else:
        figures = run_baseline(day, sample, seed, cover_windows=cover_windows)
    Path(out).write_text(json.dumps(figures, default=str), encoding="utf-8")
    return 0


def _spawn(
    role: str, day: dt.date, sample: int | None, seed: int, timeout: float, cover_windows: bool
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(prefix=f"bench-detect-{role}-", suffix=".json", delete=False) as handle:
        out = handle.name
    try:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", role, "--date", day.isoformat()]
        command += ["--out", out, "--seed", str(seed)]
        if sample is not None:
            command += ["--baseline-sample", str(sample)]
        if not cover_windows:
            command += ["--same-day-baseline-only"]
        subprocess.run(command, check=True, timeout=timeout, cwd=ROOT)
        result: dict[str, Any] = json.loads(Path(out).read_text(encoding="utf-8"))
        return result
    finally:
        Path(out).unlink(missing_ok=True)


def benchmark(
    day: dt.date,
    *,
    sample: int | None = None,
    seed: int = 1,
    timeout: float = 3600,
    cover_windows: bool = True,
    in_process: bool = False,
) -> dict[str, Any]:
    """The whole benchmark. in_process=True runs both sides here (for the test suite: test database, no RSS)."""
    from django.db import connection

    reset_notifier_state()
    warm_up()
    # The floor first, then the engine on an emptied state again: both write the same rows, compared below.
    if in_process:
        floor = run_floor(day)
    else:
        connection.close()  # the children open their own connections; ours would only hold locks
        floor = _spawn("floor", day, sample, seed, timeout, cover_windows)
    floor_rows = written_rows()
    reset_notifier_state()
    if in_process:
        engine = run_engine(day)
        engine_rows = written_rows()
        baseline = run_baseline(day, sample, seed, cover_windows=cover_windows)
        live = run_upstream_live(day)
    else:
        connection.close()
        engine = _spawn("engine", day, sample, seed, timeout, cover_windows)
        engine_rows = written_rows()
        connection.close()
        baseline = _spawn("baseline", day, sample, seed, timeout, cover_windows)
        live = _spawn("live", day, sample, seed, timeout, cover_windows)
    live_comparison = compare_live(live)
    engine_sets = engine_decisions(day)
    agreement = compare(engine_sets, baseline)
    baseline_seconds = baseline["extrapolated_seconds"] if baseline["sampled"] else baseline["seconds"]
    with connection.cursor() as cursor:
        cursor.execute('SELECT count(*), count(*) FILTER (WHERE "ValidityTo" IS NULL) FROM "tblPolicy"')
        policies, current = cursor.fetchone()
        cursor.execute('SELECT count(*) FROM "tblFamilies"')
        families = cursor.fetchone()[0]
    for figures in baseline["types"].values():  # the id lists were for the comparison only
        for key in ("upstream_sent", "corrected_candidates", "corrected_queued", "upstream_candidates"):
            figures[f"{key}_count"] = len(figures.pop(key))
        figures.pop("examined_ids", None)
    return {
        "date": day.isoformat(),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "database": {"families": families, "policies": policies, "current_policies": current},
        "engine": engine,
        "baseline": baseline,
        "agreement": agreement,
        "all_agree": all(entry["agree"] for entry in agreement.values()) and floor_rows == engine_rows,
        "floor": floor,
        "upstream_live": live,
        "upstream_live_messages": live_comparison,
        "speedup_live": round(live["seconds"] / engine["seconds"], 2) if engine["seconds"] else None,
        "live_to_floor": round(live["seconds"] / floor["seconds"], 2) if floor["seconds"] else None,
        "floor_rows": floor_rows,
        "engine_rows": engine_rows,
        "floor_agrees": floor_rows == engine_rows,
        "engine_to_floor": round(engine["seconds"] / floor["seconds"], 2) if floor["seconds"] else None,
        "engine_to_floor_cpu": (
            round(engine["cpu_seconds"] / floor["cpu_seconds"], 2) if floor["cpu_seconds"] else None
        ),
        "speedup": round(baseline_seconds / engine["seconds"], 2) if engine["seconds"] else None,
        "speedup_same_coverage": (
            round(baseline["window_seconds"] / engine["seconds"], 2)
            if engine["seconds"] and "window_seconds" in baseline
            else None
        ),
    }


def _print(result: dict[str, Any]) -> None:
    engine, baseline = result["engine"], result["baseline"]
    database = result["database"]
    print(
        f"database: {database['families']:,} families, {database['policies']:,} policies "
        f"({database['current_policies']:,} current); date {result['date']}"
    )
    print(
        f"engine:   {engine['seconds']:.2f} s wall, {engine['cpu_seconds']:.2f} s CPU, {engine['queries']} queries, "
        f"peak RSS {engine['peak_rss_mb']:.0f} MiB"
    )
    floor = result["floor"]
    print(
        f"floor:    {floor['seconds']:.2f} s wall, {floor['cpu_seconds']:.2f} s CPU (client), {floor['queries']} "
        f"hand-written INSERT ... SELECT; engine / floor = {result['engine_to_floor']}x wall; same rows written: "
        f"{result['floor_agrees']}"
    )
    if not result["floor_agrees"]:
        print(f"          floor wrote {result['floor_rows']}\n          engine wrote {result['engine_rows']}")
    live = result["upstream_live"]
    print(
        f"upstream live paths ({live['providers']} providers, first run): {live['seconds']:.2f} s "
        f"(measured {live['measured_seconds']:.2f} s, writes extrapolated), {live['queries']:,} statements; "
        f"{result['speedup_live']}x the engine, {result['live_to_floor']}x the floor"
    )
    for notification_type, counts in result["upstream_live_messages"].items():
        print(
            f"  {notification_type:<27} engine queues {counts['engine_queued']:>6,}; upstream sends "
            f"{counts['upstream_messages']:>7,} of which {counts['upstream_not_due']:>6,} not due by our rules and "
            f"{counts['upstream_provider_repeats']:>6,} per-provider repeats; it misses "
            f"{counts['engine_queued_upstream_misses']:,} of ours (other days of the window)"
        )
    sampled = " (sampled; extrapolated)" if baseline["sampled"] else ""
    print(
        f"baseline: {baseline['seconds']:.2f} s wall{sampled} -> {baseline['extrapolated_seconds']:.2f} s, "
        f"{baseline['queries']} queries, peak RSS {baseline['peak_rss_mb']:.0f} MiB"
    )
    if "window_seconds" in baseline:
        print(
            f"baseline over the engine's due windows (one run per day): {baseline['window_seconds']:.2f} s, "
            f"{baseline['window_queries']} queries"
        )
    print(
        f"speedup:  {result['speedup']}x against the same-day baseline"
        + (
            f", {result['speedup_same_coverage']}x against the baseline covering the same windows"
            if result["speedup_same_coverage"] is not None
            else ""
        )
        + f"; corrected same-day sets agree: {result['all_agree']}"
    )
    header = f"{'type':<27}{'window':>24}{'queued':>8}{'skipped':>9}{'same-day ours/base':>20}{'upstream':>10}"
    print(header)
    for notification_type in TYPES:
        figures = engine["types"][notification_type]
        agreement = result["agreement"][notification_type]
        window = "..".join(figures["window"])
        same_day = f"{agreement['engine_same_day_queued']}/{agreement['baseline_corrected_queued']}"
        same_day += "" if agreement["agree"] else " DIFFER"
        print(
            f"{notification_type:<27}{window:>24}{figures['queued']:>8}{sum(figures['skipped'].values()):>9}"
            f"{same_day:>20}{agreement['upstream_would_send']:>10}"
        )
        if agreement["upstream_vs_corrected_candidates"]:
            print(f"{'':<27}upstream differs: {agreement['upstream_vs_corrected_candidates']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Detection benchmark: engine vs upstream-style baseline.")
    parser.add_argument("--date", help="scheme day (YYYY-MM-DD); default: the day bench/generate.py used")
    parser.add_argument("--baseline-sample", type=int, help="check only N expiring policies per type; extrapolate")
    parser.add_argument("--seed", type=int, default=1, help="seed of the baseline sample")
    parser.add_argument(
        "--same-day-baseline-only", action="store_true", help="do not time the baseline over the due windows"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each side")
    parser.add_argument("--json", help="write the result here (default bench/results/detect.json)")
    parser.add_argument("--child", choices=["floor", "engine", "baseline", "live"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_sample is not None and args.baseline_sample < 1:
        parser.error("--baseline-sample: must be at least 1")

    day = None
    if args.date:
        try:
            day = dt.date.fromisoformat(args.date)
        except ValueError:
            parser.error(f"--date: expected YYYY-MM-DD, got {args.date!r}")
    if args.child:
        assert day is not None and args.out
        return _child(args.child, day, args.out, args.baseline_sample, args.seed, not args.same_day_baseline_only)

    setup_django()
    from bench.generate import generated_metadata

    if day is None:
        metadata = generated_metadata()
        if metadata is None:
            parser.error("--date: no date given and the database was not made by bench/generate.py")
        day = dt.date.fromisoformat(metadata["date"])
    result = benchmark(
        day,
        sample=args.baseline_sample,
        seed=args.seed,
        timeout=args.timeout,
        cover_windows=not args.same_day_baseline_only,
    )
    _print(result)
    print(f"results: {write_results('detect', result, args.json)}")
    return 0 if result["all_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
