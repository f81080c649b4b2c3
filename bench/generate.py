"""A synthetic openIMIS-like scheme, written straight into PostgreSQL with COPY, as of a given day.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notifier_bench \\
        .venv/bin/python bench/generate.py --families 300000 --date 2026-11-28 --seed 1 --reset

What it writes (seeded: the same flags give the same rows):
- a location tree (~100,000 families a region, ~10,000 a district, ~1,500 a ward, ~150 a village), one
  enrolment officer a ward,
  six products, two of which convert into another (OLDCHF -> CHFBASIC -> CHFPLUS);
- families of 1-7 insurees, the head first; a phone mix like the field's (local 07..., +255 with spaces,
  digits without +, blank, NULL, junk such as "n/a"), some members with phones, some heads with an older
  history row (another phone); 0.5 % deleted families (retired with their members and consent);
- consent rows (tblFamilySMS) for ~93 % of families, ~60 % of them approving, languages sw / en / fr / fr-CA;
- per family a chain of yearly policies (new, then renewals, now and then into the conversion product) whose
  last expiry is spread evenly over the two years around --date; statuses as openIMIS leaves them on that day
  (idle or ready when unpaid, active from the payment day, expired by the nightly batch or not yet, suspended),
  each status change leaving a history row (ValidityTo set, LegacyID = the current id) the way openIMIS does;
  early and late renewals, deleted renewals, and a few unrelated second products.
Nothing is dated after --date: the database is a snapshot of the scheme at the end of that day.

Afterwards notifier_family_phone is filled by notifier.phones.refresh_family_phones() (the sender's phone rule)
and the tables are analysed. The load runs in one transaction with foreign-key triggers off
(session_replication_role = replica, the usual bulk-load setting); referential integrity is checked with
set-based queries before commit instead, so a broken generator rolls everything back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notifier.demo_names import GIVEN_NAMES as DEMO_GIVEN_NAMES
from notifier.demo_names import LAST_NAMES as DEMO_LAST_NAMES

DAY = dt.timedelta(days=1)
TERM_DAYS = 365

LOCATION_COLUMNS = (
    "LocationId",
    "LocationUUID",
    "LocationCode",
    "LocationName",
    "LocationType",
    "ParentLocationId",
    "ValidityFrom",
    "ValidityTo",
    "LegacyID",
)
OFFICER_COLUMNS = (
    "OfficerID",
    "OfficerUUID",
    "Code",
    "LastName",
    "OtherNames",
    "Phone",
    "LocationId",
    "ValidityFrom",
    "ValidityTo",
    "LegacyID",
)
PRODUCT_COLUMNS = (
    "ProdID",
    "ProdUUID",
    "ProductCode",
    "ProductName",
    "ConversionProdID",
    "ValidityFrom",
    "ValidityTo",
    "LegacyID",
)
FAMILY_COLUMNS = ("FamilyID", "FamilyUUID", "InsureeID", "LocationId", "ValidityFrom", "ValidityTo", "LegacyID")
INSUREE_COLUMNS = (
    "InsureeID",
    "InsureeUUID",
    "CHFID",
    "LastName",
    "OtherNames",
    "FamilyID",
    "IsHead",
    "Phone",
    "DOB",
    "ValidityFrom",
    "ValidityTo",
    "LegacyID",
)
POLICY_COLUMNS = (
    "PolicyID",
    "PolicyUUID",
    "PolicyStage",
    "PolicyStatus",
    "EnrollDate",
    "StartDate",
    "EffectiveDate",
    "ExpiryDate",
    "FamilyID",
    "OfficerID",
    "ProdID",
    "PolicyValue",
    "ValidityFrom",
    "ValidityTo",
    "LegacyID",
)
FAMILY_SMS_COLUMNS = ("FamilyID", "ApprovalOfSMS", "LanguageOfSMS", "ValidityFrom", "ValidityTo")

# (table, columns, identity column or None), in load order.
TABLES: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("tblLocations", LOCATION_COLUMNS, "LocationId"),
    ("tblOfficer", OFFICER_COLUMNS, "OfficerID"),
    ("tblProduct", PRODUCT_COLUMNS, "ProdID"),
    ("tblFamilies", FAMILY_COLUMNS, "FamilyID"),
    ("tblInsuree", INSUREE_COLUMNS, "InsureeID"),
    ("tblPolicy", POLICY_COLUMNS, "PolicyID"),
    ("tblFamilySMS", FAMILY_SMS_COLUMNS, None),
)
# The notifier's own state, emptied by --reset together with the scheme.
NOTIFIER_TABLES = (
    "notifier_family_phone",
    "notifier_delivery_attempt",
    "notifier_outbox",
    "notifier_decision",
    "notifier_detection_run",
)

IDLE, ACTIVE, SUSPENDED, EXPIRED, READY = 1, 2, 4, 8, 16

# code, name, conversion product code, weight as a family's main product
PRODUCTS = (
    ("OLDCHF", "CHF (old scheme)", "CHFBASIC", 0.08),
    ("CHFBASIC", "CHF Basic", "CHFPLUS", 0.40),
    ("CHFPLUS", "CHF Plus", None, 0.17),
    ("ICHF", "iCHF Family Cover", None, 0.25),
    ("SCHOOL", "School Health Cover", None, 0.05),
    ("FORMAL", "Formal Sector Cover", None, 0.05),
)
PRODUCT_VALUES = {"OLDCHF": "10000.00", "CHFBASIC": "30000.00", "CHFPLUS": "60000.00", "ICHF": "40000.00"}

LAST_NAMES = [*DEMO_LAST_NAMES, "Kweka", "Minja", "Mtui", "Lema", "Komba", "Haule", "Ngowi", "Mallya", "Moshi", "Sanga"]
GIVEN_NAMES = [*DEMO_GIVEN_NAMES, "Ally", "Mwanaisha", "Subira", "Tumaini", "Furaha", "Pendo", "Shukuru", "Kheri"]
PLACE_NAMES = [
    "Mlimani",
    "Bondeni",
    "Mtoni",
    "Kisiwani",
    "Majengo",
    "Kilimahewa",
    "Msasani",
    "Uzunguni",
    "Mwembeni",
    "Sokoni",
    "Kati",
    "Mjini",
    "Juu",
    "Chini",
    "Mbuyuni",
    "Mnazi",
    "Kilole",
    "Mabatini",
    "Mikocheni",
    "Kijiweni",
]
JUNK_PHONES = ("n/a", "12345", "0000000000", "call officer", "+1 555", "07", "none")
LANGUAGES = (("sw", 0.55), ("en", 0.30), ("fr", 0.12), ("fr-CA", 0.03))
MEMBER_COUNTS = ((1, 0.18), (2, 0.17), (3, 0.20), (4, 0.18), (5, 0.13), (6, 0.08), (7, 0.06))
CHAIN_LENGTHS = ((1, 0.75), (2, 0.20), (3, 0.05))
FAMILIES_PER_VILLAGE = 150
FAMILIES_PER_DISTRICT = 10_000
FAMILIES_PER_REGION = 100_000


class GenerateError(RuntimeError):
    """The target database or the flags do not allow a load; the message says which and what to do."""


@dataclass(frozen=True)
class GenerateOptions:
    families: int = 300_000
    date: dt.date | None = None
    seed: int = 1
    reset: bool = False
    vacuum: bool = True

    def __post_init__(self) -> None:
        if self.families < 1:
            raise GenerateError("--families: must be at least 1")


@dataclass
class GenerateSummary:
    date: str
    seed: int
    families: int
    rows: dict[str, int] = field(default_factory=dict)
    current_policies: int = 0
    deleted_policies: int = 0
    history_policies: int = 0
    family_phones: int = 0
    approving_families: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class _Spool:
    """Rows of one table as COPY text, in a temporary file until the load."""

    def __init__(self, directory: Path, table: str) -> None:
        self.path = directory / f"{table}.tsv"
        self.handle: TextIO = self.path.open("w", encoding="utf-8", newline="\n")
        self.rows = 0

    def add(self, values: Iterable[Any]) -> None:
        self.handle.write("\t".join(["\\N" if value is None else str(value) for value in values]))
        self.handle.write("\n")
        self.rows += 1


def _weighted(rng: random.Random, choices: tuple[tuple[Any, float], ...]) -> Any:
    roll = rng.random()
    for value, weight in choices:
        roll -= weight
        if roll < 0:
            return value
    return choices[-1][0]


class _Scheme:
    """Generates the rows. Ids are assigned here, so rows can reference each other before they are loaded."""

    def __init__(self, options: GenerateOptions, today: dt.date, time_zone: str, spools: dict[str, _Spool]) -> None:
        self.rng = random.Random(options.seed)
        self.options = options
        self.today = today
        self.zone = ZoneInfo(time_zone)
        self.spools = spools
        self.next_insuree_id = 1
        self.next_policy_id = 1
        self.current_policies = 0
        self.deleted_policies = 0
        self.history_policies = 0
        self.epoch = self._at(dt.date(2015, 1, 1), 8)

    # --- helpers ---------------------------------------------------------------------------------------

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    @lru_cache(maxsize=8192)  # noqa: B019 - one scheme per process; the cache dies with it
    def _offset(self, day: dt.date, hour: int) -> str:
        offset = dt.datetime(day.year, day.month, day.day, hour, tzinfo=self.zone).utcoffset() or dt.timedelta()
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"

    def _at(self, day: dt.date, hour: int, minute: int = 0) -> str:
        """A timestamptz literal for `day` at hour:minute in the scheme's time zone."""
        return f"{day.isoformat()} {hour:02d}:{minute:02d}:00{self._offset(day, hour)}"

    def _head_phone(self) -> str | None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.52:
            return f"07{rng.choice('1234568')}{rng.randrange(10**7):07d}"
        if roll < 0.62:
            return f"+255 6{rng.choice('25789')}{rng.randrange(10**3):03d} {rng.randrange(10**4):04d}"
        if roll < 0.66:
            return f"2557{rng.choice('1234568')}{rng.randrange(10**7):07d}"
        if roll < 0.74:
            return ""
        if roll < 0.89:
            return None
        return rng.choice(JUNK_PHONES)

    def _member_phone(self) -> str | None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.22:
            return f"07{rng.choice('1234568')}{rng.randrange(10**7):07d}"
        if roll < 0.26:
            return rng.choice(JUNK_PHONES)
        if roll < 0.30:
            return ""
        return None

    # --- reference data --------------------------------------------------------------------------------

    def reference_data(self) -> None:
        rng = self.rng
        villages_wanted = max(4, self.options.families // FAMILIES_PER_VILLAGE)
        # ~100,000 families a region and ~10,000 a district: the report benchmark's two sizes.
        wards_wanted = max(2, villages_wanted // 10)
        districts_wanted = min(wards_wanted, max(1, self.options.families // FAMILIES_PER_DISTRICT))
        regions_wanted = min(districts_wanted, max(1, self.options.families // FAMILIES_PER_REGION))
        locations = self.spools["tblLocations"]
        next_id = 1

        def location(code: str, name: str, kind: str, parent: int | None) -> int:
            nonlocal next_id
            location_id = next_id
            next_id += 1
            locations.add((location_id, self._uuid(), code, name, kind, parent, self.epoch, None, None))
            return location_id

        regions = [location(f"R{i + 1:02d}", f"Region {i + 1}", "R", None) for i in range(regions_wanted)]
        districts = [
            location(f"D{i + 1:03d}", f"{rng.choice(PLACE_NAMES)} District {i + 1}", "D", regions[i % len(regions)])
            for i in range(districts_wanted)
        ]
        wards = [
            location(f"W{i + 1:04d}", f"{rng.choice(PLACE_NAMES)} {i + 1}", "W", districts[i % len(districts)])
            for i in range(wards_wanted)
        ]
        self.villages: list[tuple[int, int]] = []  # (village id, officer id)
        officers = self.spools["tblOfficer"]
        officer_of_ward = {}
        for index, ward in enumerate(wards):
            officer_id = index + 1
            district = districts[index % len(districts)]
            officers.add(
                (
                    officer_id,
                    self._uuid(),
                    f"EO{officer_id:05d}",
                    rng.choice(LAST_NAMES),
                    rng.choice(GIVEN_NAMES),
                    f"07{rng.choice('1234568')}{rng.randrange(10**7):07d}",
                    district,
                    self.epoch,
                    None,
                    None,
                )
            )
            officer_of_ward[ward] = officer_id
        for index in range(villages_wanted):
            ward = wards[index % len(wards)]
            village = location(f"V{index + 1:05d}", f"{rng.choice(PLACE_NAMES)} {index + 1}", "V", ward)
            self.villages.append((village, officer_of_ward[ward]))

        products = self.spools["tblProduct"]
        ids = {code: index + 1 for index, (code, *_rest) in enumerate(PRODUCTS)}
        self.product_ids = ids
        self.conversion = {ids[code]: ids[target] for code, _name, target, _weight in PRODUCTS if target}
        self.product_weights = tuple((ids[code], weight) for code, _name, _target, weight in PRODUCTS)
        self.product_values = {ids[code]: PRODUCT_VALUES.get(code, "25000.00") for code in ids}
        for code, name, target, _weight in PRODUCTS:
            products.add((ids[code], self._uuid(), code, name, ids[target] if target else None, self.epoch, None, None))

    # --- families --------------------------------------------------------------------------------------

    def families(self) -> None:
        for family_id in range(1, self.options.families + 1):
            self._family(family_id)

    def _family(self, family_id: int) -> None:
        rng = self.rng
        today = self.today
        village, officer = rng.choice(self.villages)
        deleted = rng.random() < 0.005
        last_name = rng.choice(LAST_NAMES)
        family_since = today - dt.timedelta(days=rng.randint(400, 3000))
        family_from = self._at(family_since, 8, rng.randrange(60))
        deleted_at = self._at(today - dt.timedelta(days=rng.randint(1, 300)), 11) if deleted else None

        members = _weighted(rng, MEMBER_COUNTS)
        head_id = self.next_insuree_id
        insurees = self.spools["tblInsuree"]
        for index in range(members):
            insuree_id = self.next_insuree_id
            self.next_insuree_id += 1
            head = index == 0
            phone = self._head_phone() if head else self._member_phone()
            member_from, old_phone = family_from, None
            if head and rng.random() < 0.03:  # the head's phone was changed once: the old one is history
                member_from = self._at(today - dt.timedelta(days=rng.randint(1, 365)), 14)
                old_phone = f"07{rng.choice('1234568')}{rng.randrange(10**7):07d}"
            chf_id = f"{family_id:09d}{index:02d}"
            dob = dt.date(rng.randint(1940, 2024), rng.randint(1, 12), rng.randint(1, 28))
            given = rng.choice(GIVEN_NAMES)
            insurees.add(
                (
                    insuree_id,
                    self._uuid(),
                    chf_id,
                    last_name,
                    given,
                    family_id,
                    head,
                    phone,
                    dob,
                    member_from,
                    deleted_at,
                    None,
                )
            )
            if old_phone is not None:
                history_id = self.next_insuree_id
                self.next_insuree_id += 1
                insurees.add(
                    (
                        history_id,
                        self._uuid(),
                        chf_id,
                        last_name,
                        given,
                        family_id,
                        True,
                        old_phone,
                        dob,
                        family_from,
                        member_from,
                        insuree_id,
                    )
                )

        self.spools["tblFamilies"].add((family_id, self._uuid(), head_id, village, family_from, deleted_at, None))
        if deleted:
            self.spools["tblFamilySMS"].add((family_id, False, "sw", family_from, deleted_at))
        elif rng.random() < 0.93:
            approved = rng.random() < 0.62
            self.spools["tblFamilySMS"].add((family_id, approved, _weighted(rng, LANGUAGES), family_from, None))

        self._policies(family_id, officer)

    # --- policies --------------------------------------------------------------------------------------

    def _policies(self, family_id: int, officer: int) -> None:
        rng = self.rng
        today = self.today
        product = _weighted(rng, self.product_weights)
        chain = _weighted(rng, CHAIN_LENGTHS)
        last_expiry = today + dt.timedelta(days=rng.randint(-365, 365))
        first_start = last_expiry - dt.timedelta(days=TERM_DAYS * chain - 1)
        for index in range(chain):
            if index and product in self.conversion and rng.random() < 0.15:
                product = self.conversion[product]
            start = first_start + dt.timedelta(days=TERM_DAYS * index)
            self._policy(family_id, officer, product, start, "N" if index == 0 else "R")

        # The last policy's renewal, if any: early (before expiry) or late, sometimes into the conversion product.
        days_to_expiry = (last_expiry - today).days
        chance = 0.25 if 0 <= days_to_expiry <= 45 else (0.20 if days_to_expiry < 0 else 0.0)
        if rng.random() < chance:
            gap = rng.randint(1, 60) if rng.random() < 0.15 else 0
            start = last_expiry + dt.timedelta(days=1 + gap)
            renewal_product = product
            if product in self.conversion and rng.random() < 0.25:
                renewal_product = self.conversion[product]
            deleted = rng.random() < 0.03
            self._policy(family_id, officer, renewal_product, start, "R", deleted=deleted)

        if rng.random() < 0.04:  # an unrelated second product: never a renewal of the first
            other = _weighted(rng, self.product_weights)
            if other != product and self.conversion.get(product) != other:
                expiry = today + dt.timedelta(days=rng.randint(-365, 365))
                self._policy(family_id, officer, other, expiry - dt.timedelta(days=TERM_DAYS - 1), "N")

    def _policy(
        self, family_id: int, officer: int, product: int, start: dt.date, stage: str, *, deleted: bool = False
    ) -> None:
        rng = self.rng
        today = self.today
        expiry = start + dt.timedelta(days=TERM_DAYS - 1)
        enroll = start - dt.timedelta(days=rng.randint(0, 45))
        if enroll > today:
            return  # not enrolled yet on the day
        enrolled_at = self._at(enroll, 8, rng.randrange(60))
        paid = enroll + dt.timedelta(days=rng.randint(0, max(0, (start - enroll).days) + 20))
        never_paid = rng.random() < 0.03
        value = self.product_values[product]
        policy_id = self.next_policy_id
        self.next_policy_id += 1
        policies = self.spools["tblPolicy"]
        policy_uuid = self._uuid()

        def row(status: int, effective: dt.date | None, valid_from: str, valid_to: str | None, legacy: int | None):
            return (
                policy_id if legacy is None else self._history_id(),
                policy_uuid if legacy is None else self._uuid(),
                stage,
                status,
                enroll,
                start,
                effective,
                expiry,
                family_id,
                officer,
                product,
                value,
                valid_from,
                valid_to,
                legacy,
            )

        deleted_at = self._at(today - dt.timedelta(days=rng.randint(0, 20)), 16) if deleted else None
        if paid > today or never_paid:
            status = READY if rng.random() < 0.1 else IDLE
            policies.add(row(status, None, enrolled_at, deleted_at, None))
            self._count_current(deleted)
            return

        effective = max(start, paid)
        activated_at = self._at(paid, rng.randint(9, 17), rng.randrange(60))
        history = [row(IDLE, None, enrolled_at, activated_at, policy_id)]
        status, valid_from = ACTIVE, activated_at
        suspended = False
        if expiry < today:
            roll = rng.random()
            if roll < 0.85:  # the nightly batch expired it the day after expiry
                expired_at = self._at(expiry + DAY, 1, rng.randrange(30))
                history.append(row(ACTIVE, effective, activated_at, expired_at, policy_id))
                status, valid_from = EXPIRED, expired_at
            elif roll < 0.95:
                pass  # the batch has not run for it: still active after expiry
            else:
                suspended = True
        elif paid < today and rng.random() < 0.03:
            suspended = True
        if suspended:
            span = max(1, (min(expiry, today) - paid).days)
            suspended_at = self._at(paid + dt.timedelta(days=rng.randint(1, span)), 12)
            history.append(row(ACTIVE, effective, activated_at, suspended_at, policy_id))
            status, valid_from = SUSPENDED, suspended_at
        policies.add(row(status, effective, valid_from, deleted_at, None))
        self._count_current(deleted)
        for history_row in history:
            policies.add(history_row)
        self.history_policies += len(history)

    def _count_current(self, deleted: bool) -> None:
        if deleted:  # openIMIS deletes a policy by closing its current row (ValidityTo, no LegacyID)
            self.deleted_policies += 1
        else:
            self.current_policies += 1

    def _history_id(self) -> int:
        history_id = self.next_policy_id
        self.next_policy_id += 1
        return history_id


# --- loading -----------------------------------------------------------------------------------------------


def _has_scheme(cursor: Any) -> bool:
    cursor.execute(
        'SELECT EXISTS (SELECT 1 FROM "tblLocations") OR EXISTS (SELECT 1 FROM "tblFamilies") '
        'OR EXISTS (SELECT 1 FROM "tblInsuree") OR EXISTS (SELECT 1 FROM "tblPolicy") '
        'OR EXISTS (SELECT 1 FROM "tblProduct") OR EXISTS (SELECT 1 FROM "tblOfficer")'
    )
    return bool(cursor.fetchone()[0])


def _reset(cursor: Any) -> None:
    tables = [name for name, _columns, _identity in TABLES] + list(NOTIFIER_TABLES)
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses tables with deferred checks pending
    cursor.execute(f"TRUNCATE {', '.join(_quote(name) for name in tables)} RESTART IDENTITY CASCADE")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy(cursor: Any, table: str, columns: tuple[str, ...], path: Path) -> None:
    statement = f"COPY {_quote(table)} ({', '.join(_quote(c) for c in columns)}) FROM STDIN"
    with cursor.copy(statement) as copy, path.open("r", encoding="utf-8") as handle:
        while block := handle.read(1 << 20):
            copy.write(block)


INTEGRITY_CHECKS = {
    "insuree without family": 'SELECT count(*) FROM "tblInsuree" i WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblFamilies" f WHERE f."FamilyID" = i."FamilyID")',
    "family head missing": 'SELECT count(*) FROM "tblFamilies" f WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblInsuree" i WHERE i."InsureeID" = f."InsureeID")',
    "family location missing": 'SELECT count(*) FROM "tblFamilies" f WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblLocations" l WHERE l."LocationId" = f."LocationId")',
    "policy family missing": 'SELECT count(*) FROM "tblPolicy" p WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblFamilies" f WHERE f."FamilyID" = p."FamilyID")',
    "policy product missing": 'SELECT count(*) FROM "tblPolicy" p WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblProduct" r WHERE r."ProdID" = p."ProdID")',
    "policy officer missing": 'SELECT count(*) FROM "tblPolicy" p WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblOfficer" o WHERE o."OfficerID" = p."OfficerID")',
    "policy history without current row": 'SELECT count(*) FROM "tblPolicy" p WHERE p."LegacyID" IS NOT NULL '
    'AND NOT EXISTS (SELECT 1 FROM "tblPolicy" c WHERE c."PolicyID" = p."LegacyID")',
    "consent without family": 'SELECT count(*) FROM "tblFamilySMS" s WHERE NOT EXISTS '
    '(SELECT 1 FROM "tblFamilies" f WHERE f."FamilyID" = s."FamilyID")',
}


def _check_integrity(cursor: Any) -> None:
    broken = {}
    for label, query in INTEGRITY_CHECKS.items():
        cursor.execute(query)
        count = cursor.fetchone()[0]
        if count:
            broken[label] = count
    if broken:
        raise GenerateError(f"generated rows break referential integrity, nothing loaded: {broken}")


def generate(options: GenerateOptions, log: TextIO | None = None) -> GenerateSummary:
    """Load a synthetic scheme into the default database (Django settings). Returns counts and timings."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from notifier.phones import refresh_family_phones

    if connection.vendor != "postgresql":
        raise GenerateError(f"DATABASE_URL: bench/generate.py needs PostgreSQL (COPY), got {connection.vendor}")
    today = options.date or timezone.localdate()
    summary = GenerateSummary(date=today.isoformat(), seed=options.seed, families=options.families)

    def say(message: str) -> None:
        if log is not None:
            log.write(message + "\n")
            log.flush()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as directory:
        spools = {name: _Spool(Path(directory), name) for name, _columns, _identity in TABLES}
        scheme = _Scheme(options, today, settings.TIME_ZONE, spools)
        scheme.reference_data()
        scheme.families()
        for spool in spools.values():
            spool.handle.close()
        summary.rows = {name: spool.rows for name, spool in spools.items()}
        summary.current_policies = scheme.current_policies
        summary.deleted_policies = scheme.deleted_policies
        summary.history_policies = scheme.history_policies
        summary.seconds["rows"] = round(time.perf_counter() - started, 2)
        say(f"generated {sum(summary.rows.values()):,} rows in {summary.seconds['rows']} s: {summary.rows}")

        loading = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            if _has_scheme(cursor):
                if not options.reset:
                    raise GenerateError(
                        "the database already holds a scheme (tblLocations/tblFamilies/tblPolicy/... not empty); "
                        "pass --reset to empty it first"
                    )
                _reset(cursor)
            cursor.execute("SET LOCAL session_replication_role = replica")
            for name, columns, _identity in TABLES:
                _copy(cursor, name, columns, spools[name].path)
                say(f"  COPY {name}: {spools[name].rows:,} rows")
            cursor.execute("SET LOCAL session_replication_role = origin")
            _check_integrity(cursor)
            for name, _columns, identity in TABLES:
                if identity:
                    cursor.execute(
                        f"SELECT setval(pg_get_serial_sequence(%s, %s), "
                        f"(SELECT coalesce(max({_quote(identity)}), 0) + 1 FROM {_quote(name)}), false)",
                        [_quote(name), identity],
                    )
            metadata = {"bench": {"date": today.isoformat(), "seed": options.seed, "families": options.families}}
            cursor.execute(f"COMMENT ON TABLE \"tblPolicy\" IS '{json.dumps(metadata)}'")
        summary.seconds["copy"] = round(time.perf_counter() - loading, 2)
        say(f"loaded in {summary.seconds['copy']} s")

    phones = time.perf_counter()
    summary.family_phones = refresh_family_phones()
    summary.seconds["family_phones"] = round(time.perf_counter() - phones, 2)
    say(f"notifier_family_phone: {summary.family_phones:,} rows in {summary.seconds['family_phones']} s")

    analysing = time.perf_counter()
    tables = [name for name, _columns, _identity in TABLES] + ["notifier_family_phone"]
    with connection.cursor() as cursor:
        vacuum = options.vacuum and not connection.in_atomic_block
        for name in tables:
            cursor.execute(f"{'VACUUM ANALYZE' if vacuum else 'ANALYZE'} {_quote(name)}")
        cursor.execute('SELECT count(*) FROM "tblFamilySMS" WHERE "ApprovalOfSMS" AND "ValidityTo" IS NULL')
        summary.approving_families = cursor.fetchone()[0]
    summary.seconds["analyze"] = round(time.perf_counter() - analysing, 2)
    summary.seconds["total"] = round(time.perf_counter() - started, 2)
    say(f"{'vacuum analyze' if options.vacuum else 'analyze'} in {summary.seconds['analyze']} s")
    return summary


def generated_metadata() -> dict[str, Any] | None:
    """The flags of the last load into the default database (stored as a comment on tblPolicy), if any."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('\"tblPolicy\"'::regclass, 'pg_class')")
        row = cursor.fetchone()
    if not row or not row[0]:
        return None
    try:
        value = json.loads(row[0])
    except json.JSONDecodeError:
        return None
    bench = value.get("bench") if isinstance(value, dict) else None
    return bench if isinstance(bench, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=300_000, help="number of families (default 300,000)")
    parser.add_argument("--date", help="the scheme's 'today' (YYYY-MM-DD); default: today in TIME_ZONE")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reset", action="store_true", help="empty the scheme and the notifier's tables first")
    parser.add_argument("--no-vacuum", action="store_true", help="ANALYZE only, no VACUUM")
    parser.add_argument("--json", help="write the summary here (default bench/results/generate.json)")
    args = parser.parse_args(argv)

    try:
        date = dt.date.fromisoformat(args.date) if args.date else None
    except ValueError:
        parser.error(f"--date: expected YYYY-MM-DD, got {args.date!r}")

    from bench._common import setup_django, write_results

    setup_django()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    try:
        options = GenerateOptions(
            families=args.families, date=date, seed=args.seed, reset=args.reset, vacuum=not args.no_vacuum
        )
        summary = generate(options, log=sys.stdout)
    except GenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total_rows = sum(summary.rows.values())
    print(
        f"done in {summary.seconds['total']} s: {summary.families:,} families, "
        f"{summary.rows['tblInsuree']:,} insurees, {summary.rows['tblPolicy']:,} policies "
        f"({summary.current_policies:,} current, {summary.history_policies:,} history), "
        f"{summary.family_phones:,} families with a valid phone, {summary.approving_families:,} approving; "
        f"{total_rows:,} rows"
    )
    print(f"summary: {write_results('generate', asdict(summary), args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
