"""An openIMIS fixture database: the real openIMIS PostgreSQL schema (../shared/openimis) in a fresh database.

    with openimis_database(family_sms="lower") as db:   # or "camel" (quoted CamelCase), "camel_pk" (a fork's PK)
        insert_sample(db)                                 # openIMIS-shaped rows written with plain SQL
        db.manage("migrate")                              # manage.py in a subprocess, OPENIMIS_MODE=attached
        db.query("SELECT ...")                            # as the postgres superuser

The database is named from the run (`oi_<pid>_<random>`) and dropped afterwards. Used by tests/test_attached_*.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

REPO = Path(__file__).resolve().parents[1]
SHARED_OPENIMIS = REPO.parent / "shared" / "openimis"
SCHEMA_SQL = SHARED_OPENIMIS / "00_schema.sql"
DJANGO_SQL = SHARED_OPENIMIS / "01_django.sql"

# tblFamilySMS as the openIMIS module's model spells it (quoted CamelCase); 00_schema.sql has it unquoted (lower case).
CAMEL_FAMILY_SMS = """
DROP TABLE public."tblFamilySMS";
CREATE TABLE public."tblFamilySMS" (
    "FamilyID" integer NOT NULL {pk},
    "ApprovalOfSMS" boolean,
    "LanguageOfSMS" varchar(5),
    "ValidityFrom" timestamptz NOT NULL,
    "ValidityTo" timestamptz
    {unique}
);
"""


def server_url() -> str:
    """The PostgreSQL server of the test run (DATABASE_URL without its database), default loopback."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _with_database(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


@dataclass
class OpenIMISDatabase:
    name: str
    url: str
    family_sms: str

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self.connect() as connection:
            connection.execute(sql, params)  # type: ignore[arg-type]

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connect() as connection:
            return connection.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENIMIS_", "NOTIFIER_"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "project.settings",
                "DATABASE_URL": self.url,
                "OPENIMIS_MODE": "attached",
                "CELERY_BROKER_URL": "",
                "REDIS_URL": "",
                "PYTHONPATH": str(REPO),
            }
        )
        env.update(extra)
        return env

    def manage(
        self, *args: str, timeout: float = 180, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """`manage.py <args>` against this database in attached mode (a subprocess: settings are per process)."""
        return self._run([sys.executable, str(REPO / "manage.py"), *args], timeout, check, env)

    def probe(self, action: str, *args: str, timeout: float = 180, **env: str) -> Any:
        """Run tests/attached_probe.py `action` in attached mode and return the JSON it prints."""
        done = self._run([sys.executable, "-m", "tests.attached_probe", action, *args], timeout, True, env)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def _run(
        self, command: list[str], timeout: float, check: bool, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command, cwd=REPO, env=self.env(**env), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command[1:])} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done


def _psql(url: str, path: Path, *, stop_on_error: bool) -> None:
    command = ["psql", "-q", "-X", "-d", url, "-f", str(path)]
    if stop_on_error:
        command[1:1] = ["-v", "ON_ERROR_STOP=1"]
    subprocess.run(
        command,
        check=stop_on_error,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if stop_on_error else subprocess.DEVNULL,
        timeout=300,
    )


@contextlib.contextmanager
def openimis_database(family_sms: str = "lower", prefix: str = "oi") -> Iterator[OpenIMISDatabase]:
    """A fresh database with 00_schema.sql and 01_django.sql loaded; tblFamilySMS in the given spelling:
    `lower` (as 00_schema.sql creates it), `camel` (quoted CamelCase, UNIQUE (FamilyID, ValidityTo)) or
    `camel_pk` (quoted CamelCase, FamilyID primary key: a fork's one-row-per-family table)."""
    if family_sms not in ("lower", "camel", "camel_pk"):
        raise ValueError(f"family_sms: lower, camel or camel_pk, got {family_sms!r}")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    server = server_url()
    admin = _with_database(server, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    database = OpenIMISDatabase(name=name, url=_with_database(server, name), family_sms=family_sms)
    try:
        _psql(database.url, SCHEMA_SQL, stop_on_error=False)
        _psql(database.url, DJANGO_SQL, stop_on_error=False)
        if family_sms != "lower":
            pk = "PRIMARY KEY" if family_sms == "camel_pk" else ""
            unique = "" if family_sms == "camel_pk" else ', CONSTRAINT "UC_FamilySMS" UNIQUE ("FamilyID", "ValidityTo")'
            database.execute(CAMEL_FAMILY_SMS.format(pk=pk, unique=unique))
        yield database
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- openIMIS-shaped rows -----------------------------------------------------------------------------------

# Upper-case UUIDs, as rows migrated from SQL Server carry them.
REGION_UUID = "A1B2C3D4-0000-4000-8000-000000000001"
DISTRICT_UUID = "A1B2C3D4-0000-4000-8000-000000000002"
OFFICER_UUID = "A1B2C3D4-0000-4000-8000-0000000000F1"
FAMILY_UUIDS = {
    1: "B0000000-0000-4000-8000-000000000001",
    2: "b0000000-0000-4000-8000-000000000002",
    3: "B0000000-0000-4000-8000-000000000003",
}
RUN_DATE = "2026-11-28"


def family_sms_columns(spelling: str) -> tuple[str, str, str, str, str]:
    if spelling == "lower":
        return ("familyid", "approvalofsms", "languageofsms", "validityfrom", "validityto")
    return ('"FamilyID"', '"ApprovalOfSMS"', '"LanguageOfSMS"', '"ValidityFrom"', '"ValidityTo"')


SAMPLE_SQL = """
BEGIN;
INSERT INTO "tblLanguages" ("LanguageCode", "LanguageName", "SortOrder") VALUES
    ('en', 'English', 2), ('sw', 'Kiswahili', 1), ('rw', 'Kinyarwanda', NULL);
INSERT INTO "tblLocations" ("LocationId", "LocationUUID", "LocationCode", "LocationName", "LocationType",
        "ParentLocationId", "ValidityFrom", "AuditUserId") VALUES
    (1, '{region}', 'R1', 'Region One', 'R', NULL, '2020-01-01', 1),
    (2, '{district}', 'D1', 'District One', 'D', 1, '2020-01-01', 1),
    (3, 'c0000000-0000-4000-8000-000000000003', NULL, NULL, 'W', 2, '2020-01-01', 1),
    (4, 'c0000000-0000-4000-8000-000000000004', 'V1', 'Village One', 'V', 3, '2020-01-01', 1);
INSERT INTO "tblOfficer" ("OfficerID", "OfficerUUID", "Code", "LastName", "OtherNames", "LocationId",
        "ValidityFrom", "AuditUserID") VALUES
    (1, '{officer}', 'EO1', 'Mushi', 'Amani', 2, '2020-01-01', 1);
INSERT INTO "tblProduct" ("ProdID", "ProdUUID", "ProductCode", "ProductName", "DateFrom", "DateTo", "LumpSum",
        "MemberCount", "GracePeriod", "AuditUserID", "InsurancePeriod", "ValidityFrom") VALUES
    (1, 'd0000000-0000-4000-8000-000000000001', 'BASIC', 'Basic cover', '2020-01-01', '2030-12-31', 10000, 6, 0,
     1, 12, '2020-01-01');
INSERT INTO "tblFamilies" ("FamilyID", "FamilyUUID", "InsureeID", "LocationId", "ValidityFrom", "AuditUserID")
    VALUES (1, '{f1}', 11, 4, '2025-01-01', 1), (2, '{f2}', 21, 4, '2025-01-01', 1),
           (3, '{f3}', 31, 4, '2025-01-01', 1);
INSERT INTO "tblInsuree" ("InsureeID", "InsureeUUID", "FamilyID", "CHFID", "LastName", "OtherNames", "DOB",
        "IsHead", "CardIssued", "Phone", "ValidityFrom", "AuditUserID") VALUES
    (11, 'e0000000-0000-4000-8000-000000000011', 1, '100000001', 'Mushi', 'Neema', '1980-01-01', true, false,
     '0712345678', '2025-01-01', 1),
    (21, 'E0000000-0000-4000-8000-000000000021', 2, NULL, 'Kweka', 'Juma', '1975-05-05', true, false, NULL,
     '2025-01-01', 1),
    (22, 'e0000000-0000-4000-8000-000000000022', 2, '100000022', 'Kweka', 'Asha', '2001-02-03', false, false,
     '0754000222', '2025-01-01', 1),
    (31, 'e0000000-0000-4000-8000-000000000031', 3, '100000031', 'Lyimo', 'Baraka', '1990-09-09', true, false,
     '0765000031', '2025-01-01', 1);
-- 101: cover starts on the run date; 102: expires on the run date, stage NULL; 103: status NULL;
-- 104: family 3 (no consent) starts on the run date.
INSERT INTO "tblPolicy" ("PolicyID", "PolicyUUID", "FamilyID", "ProdID", "OfficerID", "PolicyStage",
        "PolicyStatus", "EnrollDate", "StartDate", "EffectiveDate", "ExpiryDate", "ValidityFrom", "AuditUserID")
    VALUES
    (101, 'f0000000-0000-4000-8000-000000000101', 1, 1, 1, 'N', 2, '2026-11-01', '2026-11-28', '2026-11-28',
     '2027-11-27', '2026-11-01', 1),
    (102, 'F0000000-0000-4000-8000-000000000102', 2, 1, 1, NULL, 2, '2025-11-01', '2025-11-29', '2025-11-29',
     '2026-11-28', '2025-11-01', 1),
    (103, 'f0000000-0000-4000-8000-000000000103', 1, 1, NULL, 'N', NULL, '2026-11-01', '2026-11-28', '2026-11-28',
     '2027-11-27', '2026-11-01', 1),
    (104, 'f0000000-0000-4000-8000-000000000104', 3, 1, 1, 'N', 2, '2026-11-01', '2026-11-28', '2026-11-28',
     '2027-11-27', '2026-11-01', 1);
INSERT INTO "tblFamilySMS" ({c_family}, {c_approval}, {c_language}, {c_from}, {c_to}) VALUES
    (1, true, 'en', '2025-01-01', NULL),
    (2, true, 'sw', '2025-06-01', NULL);
COMMIT;
"""

HISTORY_SQL = """
INSERT INTO "tblFamilySMS" ({c_family}, {c_approval}, {c_language}, {c_from}, {c_to})
    VALUES (2, false, 'en', '2025-01-01', '2025-06-01');
"""


def insert_sample(db: OpenIMISDatabase) -> None:
    """Three families in one village (R1 > D1 > unnamed ward > V1), four policies, consent for families 1 and 2
    (family 2 with a history row unless the table is one row per family), no consent for family 3."""
    family, approval, language, valid_from, valid_to = family_sms_columns(db.family_sms)
    names = {
        "c_family": family,
        "c_approval": approval,
        "c_language": language,
        "c_from": valid_from,
        "c_to": valid_to,
        "region": REGION_UUID,
        "district": DISTRICT_UUID,
        "officer": OFFICER_UUID,
        "f1": FAMILY_UUIDS[1],
        "f2": FAMILY_UUIDS[2],
        "f3": FAMILY_UUIDS[3],
    }
    db.execute(SAMPLE_SQL.format(**names))
    if db.family_sms != "camel_pk":
        db.execute(HISTORY_SQL.format(**names))


def consent_rows(db: OpenIMISDatabase) -> list[tuple[int, bool | None, str | None, bool]]:
    """tblFamilySMS as (family, approval, language, is current), ordered by family and ValidityFrom."""
    family, approval, language, valid_from, valid_to = family_sms_columns(db.family_sms)
    rows = db.query(
        f'SELECT {family}, {approval}, {language}, {valid_to} IS NULL FROM public."tblFamilySMS" '  # noqa: S608
        f"ORDER BY {family}, {valid_from}"
    )
    return [(int(row[0]), row[1], row[2], bool(row[3])) for row in rows]


OPENIMIS_READ_TABLES = (
    "tblLanguages",
    "tblLocations",
    "tblOfficer",
    "tblProduct",
    "tblFamilies",
    "tblInsuree",
    "tblPolicy",
)


def checksums(db: OpenIMISDatabase, tables: Sequence[str] = OPENIMIS_READ_TABLES) -> dict[str, tuple[int, str]]:
    """(row count, md5 of all rows' text in a stable order) per table."""
    result = {}
    for table in tables:
        rows = db.query(
            "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "  # noqa: S608
            f'FROM public."{table}" t'
        )
        result[table] = (int(rows[0][0]), str(rows[0][1]))
    return result


def public_tables(db: OpenIMISDatabase) -> set[str]:
    return {str(row[0]) for row in db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
