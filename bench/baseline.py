"""The upstream-style detection baseline of bench/detect.py: what the upstream module does, SPEC §13 items 7 and 8,
rebuilt on our models:
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

import datetime as dt
import random
import time
from collections import Counter
from typing import Any

from bench._common import count_queries, cpu_seconds, peak_rss_mb
from notifier.types import NOTIFICATION_TYPES

TYPES = NOTIFICATION_TYPES
EXPIRY_TYPES = ("need_for_renewal", "expiration_of_policy", "reminder_after_expiration")


class Baseline:
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


def run_type(baseline: Baseline, notification_type: str) -> dict[str, Any]:
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
    baseline = Baseline(day, sample, seed)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    for notification_type in TYPES:
        run_type(baseline, notification_type)
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
                earlier = Baseline(day - dt.timedelta(days=back), sample, seed)
                figures = run_type(earlier, notification_type)
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
