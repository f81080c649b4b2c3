"""A real openIMIS PostgreSQL database for tests of the attached mode.

`openimis_database()` creates a database named from the run (pid and a counter), loads the openIMIS schema
(`../shared/openimis/00_schema.sql`) and openIMIS's Django tables (`01_django.sql`) with psql, optionally gives
tblFamilySMS the quoted CamelCase shape some deployments have, and drops the database afterwards. The schema is
loaded once per process into a template database, each test database is a copy of it.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

SCHEMA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "openimis"
if not SCHEMA_DIR.is_dir():  # a checkout elsewhere (CI): OPENIMIS_SCHEMA_DIR points at the fixture files
    SCHEMA_DIR = Path(os.environ.get("OPENIMIS_SCHEMA_DIR", SCHEMA_DIR))
SPELLINGS = ("lower", "camel")
_counter = itertools.count(1)
_template: str | None = None

# What the Cameroon fork of the openIMIS module does: quoted CamelCase columns, FamilyID the primary key.
CAMEL_FAMILY_SMS = """
DROP TABLE "{schema}"."tblFamilySMS";
CREATE TABLE "{schema}"."tblFamilySMS" (
    "FamilyID" integer NOT NULL,
    "ApprovalOfSMS" boolean,
    "LanguageOfSMS" varchar(5),
    "ValidityFrom" timestamp with time zone NOT NULL,
    "ValidityTo" timestamp with time zone,
    CONSTRAINT "UC_FamilySMS" UNIQUE ("FamilyID", "ValidityTo")
);
"""


def server_url() -> str:
    """The PostgreSQL server of the test run (DATABASE_URL without its database name)."""
    url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def database_url(name: str, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(server_url())
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        netloc = f"{user}:{password}@{host}" if password else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, f"/{name}", "", ""))


def admin_connect(dbname: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(database_url(dbname), autocommit=True)


def _psql(url: str, path: Path) -> None:
    # 01_django.sql refers to openIMIS backend tables that are not in the fixture: load it without ON_ERROR_STOP,
    # as the fixture's README says; 00_schema.sql must load cleanly.
    stop = "1" if path.name.startswith("00") else "0"
    subprocess.run(
        ["psql", url, "-q", "-v", f"ON_ERROR_STOP={stop}", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def _template_database() -> str:
    global _template
    if _template is None:
        name = f"openimis_tpl_{os.getpid()}"
        with admin_connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = database_url(name)
        _psql(url, SCHEMA_DIR / "00_schema.sql")
        _psql(url, SCHEMA_DIR / "01_django.sql")
        _template = name
    return _template


def drop_template() -> None:
    global _template
    if _template is not None:
        drop_database(_template)
        _template = None


def create_openimis_database(spelling: str = "lower", schema: str = "public") -> str:
    """A new database with the openIMIS schema; returns its name. `spelling`: tblFamilySMS columns as the
    PostgreSQL scripts create them ("lower") or quoted CamelCase ("camel")."""
    if spelling not in SPELLINGS:
        raise ValueError(f"spelling: one of {SPELLINGS}, got {spelling!r}")
    name = f"openimis_{os.getpid()}_{next(_counter)}"
    template = _template_database()
    with admin_connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    if spelling == "camel":
        with admin_connect(name) as conn:
            conn.execute(CAMEL_FAMILY_SMS.format(schema=schema).encode())
    return name


def drop_database(name: str) -> None:
    with admin_connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_role(role: str) -> None:
    with admin_connect() as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@contextmanager
def openimis_database(spelling: str = "lower") -> Iterator[str]:
    """The name of a fresh openIMIS database, dropped on exit."""
    name = create_openimis_database(spelling)
    try:
        yield name
    finally:
        drop_database(name)
