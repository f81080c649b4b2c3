"""The row builders of bench/generate.py: the scheme's rows, seeded, as COPY text in one spool file per table."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from bench.scheme_data import (
    ACTIVE,
    CHAIN_LENGTHS,
    DAY,
    EXPIRED,
    FAMILIES_PER_DISTRICT,
    FAMILIES_PER_REGION,
    FAMILIES_PER_VILLAGE,
    GIVEN_NAMES,
    IDLE,
    JUNK_PHONES,
    LANGUAGES,
    LAST_NAMES,
    MEMBER_COUNTS,
    PLACE_NAMES,
    PRODUCT_VALUES,
    PRODUCTS,
    READY,
    SUSPENDED,
    TERM_DAYS,
    GenerateOptions,
)

PhoneWriter = Callable[[random.Random], str | None]


def _local_mobile(rng: random.Random) -> str:
    return f"07{rng.choice('1234568')}{rng.randrange(10**7):07d}"


def _spaced_international(rng: random.Random) -> str:
    return f"+255 6{rng.choice('25789')}{rng.randrange(10**3):03d} {rng.randrange(10**4):04d}"


def _international_digits(rng: random.Random) -> str:
    return f"2557{rng.choice('1234568')}{rng.randrange(10**7):07d}"


def _junk(rng: random.Random) -> str:
    return str(rng.choice(JUNK_PHONES))


def _blank(_rng: random.Random) -> str:
    return ""


def _missing(_rng: random.Random) -> None:
    return None


# The field's phone mix: (cumulative share, how the phone is written); a roll in [0, 1) picks the first share above it.
HEAD_PHONES: tuple[tuple[float, PhoneWriter], ...] = (
    (0.52, _local_mobile),
    (0.62, _spaced_international),
    (0.66, _international_digits),
    (0.74, _blank),
    (0.89, _missing),
    (1.0, _junk),
)
MEMBER_PHONES: tuple[tuple[float, PhoneWriter], ...] = (
    (0.22, _local_mobile),
    (0.26, _junk),
    (0.30, _blank),
    (1.0, _missing),
)


class Spool:
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


class Scheme:
    """Generates the rows. Ids are assigned here, so rows can reference each other before they are loaded."""

    def __init__(self, options: GenerateOptions, today: dt.date, time_zone: str, spools: dict[str, Spool]) -> None:
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

    def _phone(self, mix: tuple[tuple[float, PhoneWriter], ...]) -> str | None:
        """One roll picks how the phone is written (HEAD_PHONES or MEMBER_PHONES), then the writer draws it."""
        roll = self.rng.random()
        return next(write for share, write in mix if roll < share)(self.rng)

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
            phone = self._phone(HEAD_PHONES if head else MEMBER_PHONES)
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
