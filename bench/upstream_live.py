"""Upstream's live code paths for bench/detect.py.

What upstream's scheduled task runs, rather than the exact-date triggers above (SPEC §13; the module's
notification_triggers.py and notification_dispatcher.py):
- activation and renewal do not look at a day at all: every run reads ALL current active policies (stage not R /
  stage R) with their family, consent and head, drops those its indication table marks as notified (nothing on a
  first run) and compares each with its history row valid at a fixed old date (none: "changed"), so a first run
  messages every active policy of the scheme;
- starting and the three expiry types: the exact-date queries above (an expiring policy costs a product load and a
  renewal query);
- eligibility in chunks of 1,000 policy ids, one query each (consent approved and a phone);
- per message it writes its indication row (insert or update) and one indication-details row;
- the whole cycle runs once per configured provider (two here: the eGA gateway and a fallback), so each of
  these messages would be sent once per provider.
Reads are run in full, once per provider; the two writes per message are timed on `write_sample` messages into
temporary tables and extrapolated. Messages are counted: what upstream sends on a first run, how many of them
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from bench._common import count_queries, cpu_seconds, peak_rss_mb
from bench.baseline import TYPES, Baseline, run_type

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
    same_day = Baseline(day, None, 1)
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
                        run_type(same_day, notification_type)
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
