"""What bench/generate.py's scheme is made of: the openIMIS tables and columns it writes, the products, names and
the field's mixes (phones, languages, family sizes, policy chains), and the generator's options and summary."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple

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


class Table(NamedTuple):
    name: str
    columns: tuple[str, ...]
    identity: str | None  # the identity column, whose sequence continues after the load


# In load order.
TABLES: tuple[Table, ...] = (
    Table("tblLocations", LOCATION_COLUMNS, "LocationId"),
    Table("tblOfficer", OFFICER_COLUMNS, "OfficerID"),
    Table("tblProduct", PRODUCT_COLUMNS, "ProdID"),
    Table("tblFamilies", FAMILY_COLUMNS, "FamilyID"),
    Table("tblInsuree", INSUREE_COLUMNS, "InsureeID"),
    Table("tblPolicy", POLICY_COLUMNS, "PolicyID"),
    Table("tblFamilySMS", FAMILY_SMS_COLUMNS, None),
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

    def describe(self) -> str:
        """The line bench/generate.py ends with: time, counts of what was written."""
        return (
            f"done in {self.seconds['total']} s: {self.families:,} families, "
            f"{self.rows['tblInsuree']:,} insurees, {self.rows['tblPolicy']:,} policies "
            f"({self.current_policies:,} current, {self.history_policies:,} history), "
            f"{self.family_phones:,} families with a valid phone, {self.approving_families:,} approving; "
            f"{sum(self.rows.values()):,} rows"
        )
