"""The benchmarks at a small size: correctness only (what they load, compare and check), never their timings."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from typing import Any

import psycopg
import pytest
from django.utils import timezone

from bench import attached as attached_bench
from bench import dashboard as dashboard_bench
from bench import deliver as deliver_bench
from bench import detect as detect_bench
from bench import report as report_bench
from bench.baseline import EXPIRY_TYPES
from bench.generate import generate, generated_metadata
from bench.scheme_data import GenerateError, GenerateOptions
from notifier.models import Decision, Family, FamilyPhone, Insuree, Outbox, Policy
from notifier.phones import normalize_phone
from notifier.types import NOTIFICATION_TYPES
from tests.processes import subprocess_database_url

DAY = dt.date(2026, 11, 28)


@pytest.fixture
def all_types_enabled(settings: Any) -> None:
    settings.NOTIFIER = {**settings.NOTIFIER, **detect_bench.ALL_ENABLED}


@pytest.mark.django_db
def test_it_generates_a_consistent_scheme_as_of_the_day() -> None:
    summary = generate(GenerateOptions(families=400, date=DAY, seed=7, vacuum=False), log=io.StringIO())

    assert Family.objects.count() == 400 == summary.rows["tblFamilies"]
    assert Policy.objects.count() == summary.rows["tblPolicy"]
    assert summary.rows["tblPolicy"] == summary.current_policies + summary.history_policies + summary.deleted_policies
    assert Policy.objects.current().count() == summary.current_policies
    # Every family's head is its own member, flagged as head.
    heads = Family.objects.values_list("id", "head_insuree__family_id", "head_insuree__head")
    assert all(family_id == head_family and is_head for family_id, head_family, is_head in heads)
    # History rows point at a current row of the same policy; nothing is dated after the day.
    assert (
        not Policy.objects.filter(legacy_id__isnull=False)
        .exclude(legacy_id__in=Policy.objects.current().values("id"))
        .exists()
    )
    end_of_day = timezone.make_aware(dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time.min))
    assert not Policy.objects.filter(validity_from__gte=end_of_day).exists()
    assert not Policy.objects.filter(enroll_date__gt=DAY).exists()
    statuses = set(Policy.objects.current().values_list("status", flat=True))
    assert {Policy.Status.IDLE, Policy.Status.ACTIVE, Policy.Status.EXPIRED} <= statuses
    new_policies = Policy.objects.current().filter(stage=Policy.Stage.NEW, expiry_date__isnull=False)
    expiries = [day for day in new_policies.values_list("expiry_date", flat=True) if day is not None]
    assert min(expiries) < DAY < max(expiries)
    # notifier_family_phone holds the sender's pick: the head's number when valid, else the first valid member's by
    # id; a family with no valid number has no row.
    expected: dict[int, tuple[int, str]] = {}
    for family_id, insuree_id, raw in (
        Insuree.objects.current()
        .filter(family__validity_to__isnull=True)
        .order_by("family_id", "-head", "id")
        .values_list("family_id", "id", "phone")
    ):
        phone = normalize_phone(raw)
        if phone is not None:
            expected.setdefault(family_id, (insuree_id, phone))
    stored = {row.family_id: (row.insuree_id, row.phone) for row in FamilyPhone.objects.all()}
    assert stored == expected
    assert 0 < len(stored) < 400
    # Sequences continue after the loaded ids.
    assert (
        Policy.objects.create(family_id=1, product_id=1, enroll_date=DAY, start_date=DAY).pk
        == summary.rows["tblPolicy"] + 1
    )
    assert generated_metadata() == {"date": DAY.isoformat(), "seed": 7, "families": 400}


@pytest.mark.django_db
def test_it_generates_the_same_scheme_from_the_same_seed() -> None:
    def fingerprint() -> list[tuple[Any, ...]]:
        return list(
            Policy.objects.order_by("id").values_list("id", "family_id", "status", "expiry_date", "validity_from")
        )

    generate(GenerateOptions(families=60, date=DAY, seed=3, vacuum=False))
    first = fingerprint()
    generate(GenerateOptions(families=60, date=DAY, seed=3, reset=True, vacuum=False))
    assert fingerprint() == first
    generate(GenerateOptions(families=60, date=DAY, seed=4, reset=True, vacuum=False))
    assert fingerprint() != first


@pytest.mark.django_db
def test_it_refuses_to_load_over_an_existing_scheme_without_reset() -> None:
    generate(GenerateOptions(families=20, date=DAY, seed=1, vacuum=False))
    with pytest.raises(GenerateError, match="--reset"):
        generate(GenerateOptions(families=20, date=DAY, seed=2, vacuum=False))
    assert Family.objects.count() == 20


def test_it_refuses_a_scheme_without_families() -> None:
    with pytest.raises(GenerateError, match="--families"):
        GenerateOptions(families=0)


@pytest.mark.django_db
def test_it_finds_the_same_same_day_candidates_as_the_corrected_baseline(all_types_enabled: None) -> None:
    generate(GenerateOptions(families=4000, date=DAY, seed=11, vacuum=False))

    result = detect_bench.benchmark(DAY, in_process=True, cover_windows=False)

    assert result["all_agree"], result["agreement"]
    agreement = result["agreement"]
    assert set(agreement) == set(NOTIFICATION_TYPES)
    # The comparison is not vacuous: the expiry types have same-day candidates, some of them queued.
    for notification_type in EXPIRY_TYPES:
        assert agreement[notification_type]["engine_same_day_candidates"] > 0
    assert sum(entry["engine_same_day_queued"] for entry in agreement.values()) > 0
    # The engine covers its whole window: at least what the baseline found on the day itself.
    for notification_type, figures in result["engine"]["types"].items():
        assert figures["candidates"] >= agreement[notification_type]["baseline_corrected_candidates"]
    # Upstream's rules (status and conversion ignored) differ from ours on this scheme, and the bench says why.
    reasons = {reason for entry in agreement.values() for reason in entry["upstream_vs_corrected_candidates"]}
    assert reasons
    # One query per policy for the baseline, a handful per type for the engine.
    assert result["baseline"]["queries"] > result["engine"]["queries"]
    # The hand-written SQL floor wrote exactly the engine's outbox rows and decisions, type by type.
    assert result["floor_agrees"], (result["floor_rows"], result["engine_rows"])
    assert result["floor"]["queries"] == 6
    assert sum(rows.get("outbox", 0) for rows in result["floor_rows"].values()) > 0
    # Upstream's live paths: every active policy messaged on a first run, once per provider.
    live = result["upstream_live_messages"]
    activation = live["activation_of_policy"]
    assert activation["upstream_messages"] == 2 * activation["upstream_provider_repeats"] > 0
    assert activation["upstream_not_due"] > activation["engine_queued"]
    assert all(counts["upstream_not_due"] <= counts["upstream_messages"] for counts in live.values())


@pytest.mark.django_db
def test_it_extrapolates_a_sampled_baseline_and_compares_only_the_sample(all_types_enabled: None) -> None:
    generate(GenerateOptions(families=4000, date=DAY, seed=11, vacuum=False))

    result = detect_bench.benchmark(DAY, sample=2, in_process=True, cover_windows=False)

    assert result["baseline"]["sampled"]
    for notification_type in EXPIRY_TYPES:
        figures = result["baseline"]["types"][notification_type]
        assert figures["examined"] == 2 < figures["total"]
        assert result["agreement"][notification_type]["engine_same_day_candidates"] <= 2
    assert result["all_agree"], result["agreement"]


@pytest.mark.django_db
@pytest.mark.parametrize("output", report_bench.FORMATS)
def test_it_builds_the_report_of_the_largest_area(output: str) -> None:
    generate(GenerateOptions(families=300, date=DAY, seed=5, vacuum=False))
    sizes = report_bench.area_sizes()
    area = report_bench.pick_area(sizes, 100_000)
    assert area["families"] == max(size["families"] for size in sizes)

    figures = report_bench.run_case(area, output)

    assert figures["valid"]
    assert figures["rows"] == area["families"] == Family.objects.current().count()
    assert figures["queries"] <= 4  # the area, (the officer), the places and their ranks, the families
    assert figures["bytes"] > 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_delivers_each_message_exactly_once_through_real_workers(settings: Any) -> None:
    generate(GenerateOptions(families=300, date=DAY, seed=9, vacuum=False))

    result = deliver_bench.benchmark(90, concurrency=2, timeout=90, broker_url=settings.REDIS_URL, day=DAY)

    assert not result["timed_out"]
    evidence = ("gateway_received", "gateway_duplicates", "gateway_unknown_recipients", "gateway_rejected", "outcomes")
    assert result["exactly_once"], ({key: result[key] for key in evidence}, result["worker_log_tail"])
    assert result["gateway_received"] == 90 and result["gateway_duplicates"] == 0
    assert result["outcomes"]["statuses"] == {"sent": 90}
    assert result["latency_p50_ms"] > 0 and result["latency_max_ms"] < 90_000  # measured (not NaN), within the run
    assert result["worker_cpu_ms_per_message"] > 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_measures_detection_attached_with_and_without_the_indexes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """bench/attached.py on a small scheme: copied into a real openIMIS schema, detected as the documented role,
    the same decisions without and with the indexes; database and role dropped."""
    generate(GenerateOptions(families=400, date=DAY, seed=7, vacuum=False), log=io.StringIO())
    source = subprocess_database_url()
    monkeypatch.setenv("DATABASE_URL", source)
    monkeypatch.setenv("NOTIFIER_VAR_DIR", str(tmp_path))
    target = f"oi_bench_{os.getpid()}"
    output = tmp_path / "attached.json"

    status = attached_bench.main(
        ["--source-url", source, "--target", target, "--repeat", "1", "--drop", "--output", str(output)]
    )

    assert status == 0
    result = json.loads(output.read_text())
    assert result["same_decisions"] is True
    assert result["check"] == "System check identified 4 issues (0 silenced)."  # the four indexes, absent
    assert [line.split(":")[0] for line in result["apply"]] == [
        "notifier_policy_current_from_idx",
        "notifier_policy_history_idx",
        "notifier_policy_effective_idx",
        "notifier_policy_expiry_idx",
    ]
    assert sum(figures["queued"] for figures in result["with_indexes"]["types"].values()) > 0
    assert result["full_phone_refresh"]["family_phones"] == FamilyPhone.objects.count() > 0
    with psycopg.connect(attached_bench.url_for(source, "postgres"), autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target]).fetchone() is None
        role = attached_bench.role_for(target)
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None


@pytest.mark.django_db
def test_it_fills_a_busy_month_and_measures_the_dashboard() -> None:
    generate(GenerateOptions(families=300, date=DAY, seed=5, vacuum=False))
    filled = dashboard_bench.fill(outbox=200, decisions=250)
    assert filled["rows"]["notifier_outbox"] == 200 == Outbox.objects.count()
    assert filled["rows"]["notifier_decision"] == 250 == Decision.objects.filter(outcome="skipped").count()
    assert filled["rows"]["notifier_delivery_attempt"] == Outbox.objects.exclude(status="pending").count()

    figures = dashboard_bench.measure(runs=1)

    in_month = Outbox.objects.filter(status="sent", created_at__gte=timezone.now() - dt.timedelta(days=29))
    assert figures["sent_30_days"] <= Outbox.objects.filter(status="sent").count()
    assert figures["sent_30_days"] >= in_month.count()
    assert figures["attention_total"] == Outbox.objects.filter(status__in=["failed", "unknown"]).count()
    assert figures["figures_queries"] <= 10
    assert figures["page_bytes"] > 0
