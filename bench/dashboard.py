"""Dashboard benchmark: the admin's landing page on a scheme of a million policies with a busy month behind it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notifier_bench .venv/bin/python bench/dashboard.py

Needs a scheme from bench/generate.py (300,000 families ≈ 1,000,000 policies). Empties the notifier's outbox,
attempts, decisions and forecast, then fills them with SQL as a month of traffic would: --outbox rows (default
300,000: one per current policy and a type, created over the last 40 days, 90 % sent, 3 % failed, 2 % unknown,
3 % pending, 2 % cancelled), one delivery attempt per row that left pending, --decisions skipped decisions
(default 1,000,000: every policy, one type, no_consent / no_valid_phone, evaluated over the last 30 days) and 30
days by 6 types of forecast. Then, with statistics analysed, measures build_dashboard() (the figures) and a
signed-in GET /admin/ (figures + template + SVG), each --runs times: seconds and SQL statements.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, peak_rss_mb, setup_django, write_results

FILL_OUTBOX = """
INSERT INTO notifier_outbox (policy_id, notification_type, event_date, family_id, recipient, language, text,
    encoding, segments, status, attempts, next_attempt_at, provider_account_id, provider_reference, last_error,
    created_at, updated_at, lease_owner, receipt_status, receipt_reason)
SELECT p."PolicyID",
       (ARRAY['activation_of_policy','starting_of_policy','need_for_renewal','expiration_of_policy',
              'reminder_after_expiration','renewal_of_policy'])[1 + p."PolicyID" %% 6],
       CURRENT_DATE, p."FamilyID", '+255712' || lpad((p."PolicyID" %% 1000000)::text, 6, '0'),
       'en', 'bench', 'GSM-7', 1,
       CASE WHEN r < 0.90 THEN 'sent' WHEN r < 0.93 THEN 'failed' WHEN r < 0.95 THEN 'unknown'
            WHEN r < 0.98 THEN 'pending' ELSE 'cancelled' END,
       1, now(), %(account)s, '', CASE WHEN r >= 0.90 AND r < 0.95 THEN 'HTTP 503' ELSE '' END,
       now() - (r2 * interval '40 days'), now() - (r2 * interval '40 days'), '', '', ''
FROM (SELECT "PolicyID", "FamilyID", random() AS r, random() AS r2 FROM "tblPolicy"
      WHERE "ValidityTo" IS NULL ORDER BY "PolicyID" LIMIT %(limit)s) p
"""
FILL_ATTEMPTS = """
INSERT INTO notifier_delivery_attempt (outbox_id, provider_account_id, provider, started_at, duration_ms, outcome,
    error)
SELECT id, provider_account_id, 'eGASMSGateway', created_at, 80,
       CASE status WHEN 'sent' THEN 'success' WHEN 'failed' THEN 'permanent' WHEN 'unknown' THEN 'unknown'
                   ELSE 'transient' END, last_error
FROM notifier_outbox WHERE status <> 'pending'
"""
FILL_DECISIONS = """
INSERT INTO notifier_decision (policy_id, notification_type, event_date, outcome, reason, first_evaluated_at,
    last_evaluated_at)
SELECT "PolicyID", 'need_for_renewal', CURRENT_DATE, 'skipped',
       CASE WHEN random() < 0.7 THEN 'no_consent' ELSE 'no_valid_phone' END, now(),
       now() - (random() * interval '30 days')
FROM "tblPolicy" ORDER BY "PolicyID" LIMIT %(limit)s
ON CONFLICT DO NOTHING
"""


def fill(outbox: int, decisions: int) -> dict[str, Any]:
    import datetime as dt
    import random

    from django.db import connection
    from django.utils import timezone

    from notifier.models import ForecastDay, ProviderAccount
    from notifier.types import NOTIFICATION_TYPES

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifier_delivery_attempt, notifier_outbox, notifier_decision, notifier_forecast_day CASCADE"
        )
    ProviderAccount.objects.all().delete()
    account = ProviderAccount.objects.create(name="eGA", provider="eGASMSGateway", price_per_segment="18.5")
    with connection.cursor() as cursor:
        cursor.execute(FILL_OUTBOX, {"account": account.pk, "limit": outbox})
        cursor.execute(FILL_ATTEMPTS)
        cursor.execute(FILL_DECISIONS, {"limit": decisions})
    rng = random.Random(1)
    today = timezone.localdate()
    ForecastDay.objects.bulk_create(
        ForecastDay(day=today + dt.timedelta(days=offset), notification_type=name, messages=n, segments=n)
        for offset in range(30)
        for name in NOTIFICATION_TYPES
        for n in [rng.randrange(500)]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE notifier_outbox, notifier_delivery_attempt, notifier_decision, notifier_forecast_day")
        counts = {}
        for table in ("notifier_outbox", "notifier_delivery_attempt", "notifier_decision", '"tblPolicy"'):
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table.strip('"')] = cursor.fetchone()[0]
    return {"seconds": round(time.perf_counter() - started, 1), "rows": counts}


def measure(runs: int) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from notifier.dashboard import build_dashboard

    figures: list[float] = []
    page: list[float] = []
    queries = page_queries = 0
    board = None
    from django.core.cache import cache

    cold: list[float] = []
    for _ in range(runs):
        cache.clear()
        started = time.perf_counter()
        build_dashboard()
        cold.append(time.perf_counter() - started)
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            board = build_dashboard()
            figures.append(time.perf_counter() - started)
        queries = len(captured.captured_queries)
    user, _ = User.objects.get_or_create(username="bench-dashboard", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    size = 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get("/admin/", HTTP_HOST="127.0.0.1")
            page.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        size = len(response.content)
        page_queries = len(captured.captured_queries)
    user.delete()
    assert board is not None
    return {
        "cold_seconds": [round(value, 3) for value in cold],
        "cold_median": round(statistics.median(cold), 3),
        "figures_seconds": [round(value, 3) for value in figures],
        "figures_median": round(statistics.median(figures), 3),
        "figures_queries": queries,
        "page_seconds": [round(value, 3) for value in page],
        "page_median": round(statistics.median(page), 3),
        "page_queries": page_queries,
        "page_bytes": size,
        "sent_30_days": sum(item.totals["sent"] for item in board.history),
        "attention_total": board.attention_total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--outbox", type=int, default=300_000)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-fill", action="store_true", help="measure the notifier tables as they are")
    parser.add_argument("--json", help="write the figures here (default bench/results/dashboard.json)")
    options = parser.parse_args(argv)
    setup_django()
    result: dict[str, Any] = {"machine": machine()}
    if not options.no_fill:
        result["fill"] = fill(options.outbox, options.decisions)
        print(f"filled in {result['fill']['seconds']} s: {result['fill']['rows']}")
    result["dashboard"] = measure(options.runs)
    result["peak_rss_mib"] = round(peak_rss_mb(), 1)
    board = result["dashboard"]
    print(
        f"cold (no cache): median {board['cold_median']} s {board['cold_seconds']}; "
        f"warm figures: median {board['figures_median']} s ({board['figures_queries']} queries) "
        f"over {options.runs} runs "
        f"{board['figures_seconds']}; admin page: median {board['page_median']} s ({board['page_queries']} queries, "
        f"{board['page_bytes']} bytes); sent in 30 days {board['sent_30_days']}, needing attention "
        f"{board['attention_total']}; peak RSS {result['peak_rss_mib']} MiB"
    )
    print(f"written to {write_results('dashboard', result, options.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
