"""A small, realistic demo scheme placed around a given day, so that every notification type is due on it.

Seeded: the same seed and day give the same scheme. Families go through the family service (so consent rows
and derived phones come from the same code path as in production); policies are activated the openIMIS way
(a history row keeps the idle version), which is where activation and renewal event dates come from.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from notifier import services
from notifier.demo_names import GIVEN_NAMES, LAST_NAMES
from notifier.models import Family, FamilyNotification, Location, Officer, Policy, Product
from notifier.openimis.mode import is_attached

MARKER_REGION_CODE = "DOD"

REGIONS = {
    "DOD": ("Dodoma", {"DOD1": "Bahi", "DOD2": "Kondoa"}),
    "KIL": ("Kilimanjaro", {"KIL1": "Moshi", "KIL2": "Hai"}),
}
WARD_NAMES = ["Mjini", "Kati", "Juu", "Chini"]
VILLAGE_NAMES = ["Mlimani", "Bondeni", "Mtoni", "Kisiwani", "Majengo", "Kilimahewa", "Msasani", "Uzunguni"]

# What each demo family's main policy is set up to trigger today (or to test that nothing triggers).
SCENARIOS = [
    "activation",
    "activation_same_day_as_start",
    "starting",
    "need_for_renewal",
    "expiration",
    "reminder_after_expiration",
    "renewal",
    "renewed_before_expiry",
    "renewed_to_conversion",
    "idle",
    "suspended",
    "ready",
    "active_midterm",
    "expired_long_ago",
]


@dataclass
class DemoSummary:
    created: bool
    families: int = 0
    insurees: int = 0
    policies: int = 0
    scenarios: dict[str, int] = field(default_factory=dict)


def _phone(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.50:
        return f"07{rng.choice('1234568')}{rng.randrange(10**7):07d}"  # local Tanzanian mobile
    if roll < 0.65:
        return f"+255 6{rng.choice('25789')}{rng.randrange(10**3):03d} {rng.randrange(10**4):04d}"
    if roll < 0.75:
        return ""
    if roll < 0.90:
        return None
    return rng.choice(["n/a", "12345", "0000000000", "call officer", "+1 555"])


def _locations() -> list[Location]:
    villages = []
    for region_code, (region_name, districts) in REGIONS.items():
        region = Location.objects.create(code=region_code, name=region_name, type=Location.Type.REGION)
        for district_index, (district_code, district_name) in enumerate(districts.items()):
            district = Location.objects.create(
                code=district_code, name=district_name, type=Location.Type.DISTRICT, parent=region
            )
            for ward_index in range(2):
                ward_name = WARD_NAMES[(district_index * 2 + ward_index) % len(WARD_NAMES)]
                ward = Location.objects.create(
                    code=f"{district_code}W{ward_index + 1}",
                    name=f"{district_name} {ward_name}",
                    type=Location.Type.WARD,
                    parent=district,
                )
                for village_index in range(2):
                    name = VILLAGE_NAMES[(ward_index * 2 + village_index + district_index) % len(VILLAGE_NAMES)]
                    villages.append(
                        Location.objects.create(
                            code=f"{ward.code}V{village_index + 1}",
                            name=name,
                            type=Location.Type.VILLAGE,
                            parent=ward,
                        )
                    )
    return villages


def _products() -> list[Product]:
    # Priced as schemes price them ({AmountToBePaid}): premiums per member, or a lump sum for up to 6 members.
    plus = Product.objects.create(
        code="CHFPLUS", name="CHF Plus", premium_adult=20000, premium_child=10000, general_assembly_fee=1000
    )
    basic = Product.objects.create(
        code="CHFBASIC", name="CHF Basic", conversion_product=plus, premium_adult=10000, premium_child=5000
    )
    family = Product.objects.create(
        code="ICHF", name="iCHF Family Cover", lump_sum=30000, threshold=6, premium_adult=5000, premium_child=3000
    )
    return [basic, plus, family]


def _at(day: dt.date, hour: int, now: dt.datetime) -> dt.datetime:
    """A moment on `day` in the scheme's time zone, never later than now."""
    moment = timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))
    return min(moment, now - dt.timedelta(minutes=1))


def _policy(
    family: Family,
    product: Product,
    officer: Officer,
    *,
    start: dt.date,
    effective: dt.date | None,
    expiry: dt.date,
    stage: str = Policy.Stage.NEW,
    status: int = Policy.Status.ACTIVE,
    activated_at: dt.datetime | None = None,
    now: dt.datetime,
) -> Policy:
    """A policy enrolled idle, then moved to `status` at `activated_at` (history row keeps the idle version)."""
    enrolled = timezone.make_aware(dt.datetime.combine(start - dt.timedelta(days=20), dt.time(9)))
    policy = Policy.objects.create(
        family=family,
        product=product,
        officer=officer,
        stage=stage,
        status=Policy.Status.IDLE,
        enroll_date=enrolled.date(),
        start_date=start,
        effective_date=None,
        expiry_date=expiry,
        value=Decimal("30000.00"),
        validity_from=min(enrolled, now),
    )
    if status != Policy.Status.IDLE:
        policy.save_history(activated_at or _at(start, 10, now))
        policy.status = status
        policy.effective_date = effective
        policy.save()
    return policy


def _scenario_policies(
    scenario: str,
    variant: int,
    family: Family,
    product: Product,
    officer: Officer,
    today: dt.date,
    now: dt.datetime,
) -> list[Policy]:
    """The policies of one family; `variant` (the how-many-th family of this scenario) spreads its dates.

    Dates depend on the seed and the position only, never on database ids, so a load is reproducible.
    """
    day = dt.timedelta(days=1)
    year = dt.timedelta(days=365)
    make = functools.partial(_policy, family, product=product, officer=officer, now=now)
    if scenario == "activation":  # activated today (or in the catch-up window), cover starts later
        lag = [0, 0, 1, 3][variant % 4]
        start = today + 5 * day
        activated = _at(today - lag * day, 9, now)
        return [make(start=start, effective=start, expiry=start + year - day, activated_at=activated)]
    if scenario == "activation_same_day_as_start":  # paid on the day cover starts: only "starting" goes out
        return [make(start=today, effective=today, expiry=today + year - day, activated_at=_at(today, 8, now))]
    if scenario == "starting":
        start = today - 10 * day
        return [make(start=start, effective=today, expiry=start + year, activated_at=_at(today - 12 * day, 9, now))]
    if scenario == "need_for_renewal":
        expiry = today + 5 * day
        return [make(start=expiry - year + day, effective=expiry - year + day, expiry=expiry)]
    if scenario == "expiration":
        return [make(start=today - year + day, effective=today - year + day, expiry=today)]
    if scenario == "reminder_after_expiration":
        expiry = today - 5 * day
        start = expiry - year + day
        return [make(start=start, effective=start, expiry=expiry, status=Policy.Status.EXPIRED)]
    if scenario in ("renewal", "renewed_before_expiry", "renewed_to_conversion"):
        expiry = today - day if scenario == "renewal" else today + 5 * day
        start = expiry - year + day
        old_status = Policy.Status.EXPIRED if scenario == "renewal" else Policy.Status.ACTIVE
        old = make(start=start, effective=start, expiry=expiry, status=old_status)
        renewed_product = product.conversion_product or product if scenario == "renewed_to_conversion" else product
        new = make(
            product=renewed_product,
            start=expiry + day,
            effective=expiry + day,
            expiry=expiry + year,
            stage=Policy.Stage.RENEWAL,
            status=Policy.Status.ACTIVE if scenario == "renewal" else Policy.Status.READY,
            activated_at=_at(today, 10, now),
        )
        return [old, new]
    if scenario in ("idle", "suspended", "ready"):
        status = {"idle": Policy.Status.IDLE, "suspended": Policy.Status.SUSPENDED, "ready": Policy.Status.READY}
        activated = _at(today, 9, now)
        return [
            make(start=today, effective=today, expiry=today + 5 * day, status=status[scenario], activated_at=activated)
        ]
    if scenario == "active_midterm":
        start = today - (30 + (variant * 37) % 200) * day
        return [make(start=start, effective=start, expiry=start + year)]
    start = today - 2 * year
    return [make(start=start, effective=start, expiry=start + year - day, status=Policy.Status.EXPIRED)]


def demo_exists() -> bool:
    return Location.objects.filter(code=MARKER_REGION_CODE, type=Location.Type.REGION).exists()


@transaction.atomic
def load_demo(today: dt.date | None = None, families: int = 300, seed: int = 20261128) -> DemoSummary:
    """Load the demo scheme unless it is there already (idempotent). Standalone only: attached, the families are
    openIMIS's and the demo would write into them."""
    if is_attached():
        raise CommandError("OPENIMIS_MODE=attached: the demo writes openIMIS tables; run it standalone")
    if demo_exists():
        return DemoSummary(created=False, families=Family.objects.current().count())
    rng = random.Random(seed)
    now = timezone.now()
    today = today or timezone.localdate(now)
    villages = _locations()
    products = _products()
    officers = []
    for index, district in enumerate(Location.objects.current().filter(type=Location.Type.DISTRICT).order_by("code")):
        officers.append(
            Officer.objects.create(
                code=f"EO{index + 1:03d}",
                last_name=rng.choice(LAST_NAMES),
                other_names=rng.choice(GIVEN_NAMES),
                phone=f"07{rng.randrange(10**8):08d}",
                location=district,
            )
        )
    summary = DemoSummary(created=True)
    languages = ["en", "fr", "sw", "sw", None]
    for index in range(families):
        village = villages[index % len(villages)]
        last_name = rng.choice(LAST_NAMES)
        size = rng.randint(1, 6)
        members = [
            services.MemberData(
                chf_id=f"{100000000 + index * 10 + position:09d}",
                last_name=last_name,
                other_names=rng.choice(GIVEN_NAMES),
                phone=_phone(rng),
                dob=today - dt.timedelta(days=rng.randrange(365 * 70 if position == 0 else 365 * 40) + 365 * 18),
                head=position == 0,
            )
            for position in range(size)
        ]
        consent: dict[str, object] = {"approvalOfNotification": rng.random() < 0.7}
        language = rng.choice(languages)
        if language is not None:
            consent["languageOfNotification"] = language
        family = services.create_family(
            members,
            location=village,
            contributions={services.CONTRIBUTION_KEY: consent},
            at=timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=400), dt.time(9))),
        )
        if rng.random() < 0.05:  # data from before the notifier existed: no consent row at all
            FamilyNotification.objects.filter(family=family).delete()
        scenario = SCENARIOS[index % len(SCENARIOS)]
        officer = officers[(index // len(villages)) % len(officers)]
        product = products[index % len(products)] if scenario != "renewed_to_conversion" else products[0]
        variant = index // len(SCENARIOS)
        policies = _scenario_policies(scenario, variant, family, product, officer, today, now)
        summary.families += 1
        summary.insurees += size
        summary.policies += len(policies)
        summary.scenarios[scenario] = summary.scenarios.get(scenario, 0) + 1
    return summary
