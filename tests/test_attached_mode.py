"""Attached to a real openIMIS database (SPEC §14, issue 11 points 1-4): the schema of ../shared/openimis in a fresh
PostgreSQL database, openIMIS-shaped rows written with plain SQL, then `migrate`, detection, the consent services
and the report in subprocesses with OPENIMIS_MODE=attached (tests/openimis_db.py, tests/attached_probe.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from notifier.types import NOTIFICATION_TYPES
from tests.openimis_db import (
    DISTRICT_UUID,
    FAMILY_UUIDS,
    RUN_DATE,
    OpenIMISDatabase,
    checksums,
    consent_rows,
    insert_sample,
    openimis_database,
    public_tables,
)

pytestmark = pytest.mark.slow

ALL_TYPES = json.dumps({"eligibleNotificationTypes": dict.fromkeys(NOTIFICATION_TYPES, True)})


def notifier_tables(db: OpenIMISDatabase, schema: str = "notifier") -> set[str]:
    return {str(row[0]) for row in db.query("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])}


def openimis_django_migrations(db: OpenIMISDatabase) -> list[tuple[object, ...]]:
    return db.query("SELECT * FROM public.django_migrations ORDER BY 1")


@pytest.fixture(params=["lower", "camel"])
def migrated(request: pytest.FixtureRequest) -> Iterator[OpenIMISDatabase]:
    """An openIMIS database (tblFamilySMS in both spellings) with the sample rows, migrated attached."""
    with openimis_database(request.param) as db:
        insert_sample(db)
        db.manage("migrate", "--verbosity", "0")
        yield db


def test_migrate_puts_everything_in_the_notifier_schema_and_leaves_openimis_alone() -> None:
    with openimis_database("lower") as db:
        insert_sample(db)
        db.execute("INSERT INTO public.django_migrations (app, name, applied) VALUES ('core', '0001_initial', now())")
        public_before = public_tables(db)
        migrations_before = openimis_django_migrations(db)
        openimis_before = checksums(db, [*sorted(public_before - {"django_migrations"})])
        assert "django_migrations" in public_before and "auth_user" not in notifier_tables(db)

        done = db.manage("migrate")
        again = db.manage("migrate")

        assert "Created schema 'notifier'" in done.stdout
        assert "No migrations to apply" in again.stdout
        assert public_tables(db) == public_before, "no table created in public"
        assert openimis_django_migrations(db) == migrations_before
        assert checksums(db, [*sorted(public_before - {"django_migrations"})]) == openimis_before
        tables = notifier_tables(db)
        for table in (
            "django_migrations",
            "django_content_type",
            "django_session",
            "django_admin_log",
            "auth_user",
            "auth_permission",
            "django_celery_beat_periodictask",
            "notifier_outbox",
            "notifier_family_phone",
            "notifier_template",
        ):
            assert table in tables, table
        assert not {name for name in tables if name.startswith("tbl")}, "no openIMIS table copied"
        applied = db.query("SELECT app, name FROM notifier.django_migrations WHERE app IN ('openimis', 'notifier')")
        assert ("openimis", "0001_initial") in applied and ("notifier", "0010_openimis_app") in applied
        # the service's references to openIMIS rows carry no constraint on openIMIS tables
        constraints = db.query(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = 'notifier' AND c.contype = 'f' AND c.confrelid::regclass::text LIKE '%%tbl%%'"
        )
        assert constraints == [(0,)]
        # tblLanguages gets no row; shipped templates exist for a language it lacks (fr)
        assert db.query('SELECT "LanguageCode" FROM public."tblLanguages" ORDER BY 1') == [("en",), ("rw",), ("sw",)]
        assert db.query(
            "SELECT language_id, count(*) FROM notifier.notifier_template GROUP BY language_id ORDER BY 1"
        ) == [("en", 6), ("fr", 6), ("sw", 6)]
        # the beat schedule went to the notifier's own django_celery_beat tables
        # dispatcher, sweeper, nightly phone refresh
        assert db.query("SELECT count(*) FROM notifier.django_celery_beat_periodictask") == [(4,)]


def test_migrate_uses_the_configured_schema_names() -> None:
    with openimis_database("lower") as db:
        insert_sample(db)
        # openIMIS in a schema of another name, an empty public, the service's schema pre-created by the DBA
        db.execute("ALTER SCHEMA public RENAME TO imis; CREATE SCHEMA public; CREATE SCHEMA svc_notify")
        db.manage("migrate", "--verbosity", "0", NOTIFIER_DB_SCHEMA="svc_notify", OPENIMIS_DB_SCHEMA="imis")

        assert "notifier_outbox" in notifier_tables(db, "svc_notify")
        assert notifier_tables(db, "notifier") == set() and notifier_tables(db, "public") == set()
        result = db.probe(
            "detect", RUN_DATE, NOTIFIER_CONFIG=ALL_TYPES, NOTIFIER_DB_SCHEMA="svc_notify", OPENIMIS_DB_SCHEMA="imis"
        )
        assert [row[:2] for row in result["outbox"]] == [[101, "starting_of_policy"], [102, "expiration_of_policy"]]
        consent = db.probe("consent", NOTIFIER_DB_SCHEMA="svc_notify", OPENIMIS_DB_SCHEMA="imis")
        assert (consent["spelling"], consent["keeps_history"], consent["default_language"]) == ("lower", True, "sw")
        assert db.query('SELECT count(*) FROM imis."tblFamilySMS" WHERE familyid = 1') == [(2,)]


def test_detection_reads_openimis_rows_with_nulls_and_upper_case_uuids(migrated: OpenIMISDatabase) -> None:
    before = checksums(migrated)

    result = migrated.probe("detect", RUN_DATE, NOTIFIER_CONFIG=ALL_TYPES)

    # family 2's head has no phone (and no CHFID): a member's; policy 103 has PolicyStatus NULL: never a candidate
    assert result["phones"] == [[1, 11, "+255712345678"], [2, 22, "+255754000222"], [3, 31, "+255765000031"]]
    assert result["outbox"] == [
        [101, "starting_of_policy", "+255712345678", "en", "pending"],
        [102, "expiration_of_policy", "+255754000222", "sw", "pending"],
    ]
    assert result["decisions"] == [
        [101, "starting_of_policy", "queued", ""],
        [102, "expiration_of_policy", "queued", ""],
        [104, "starting_of_policy", "skipped", "no_consent"],
    ]
    assert checksums(migrated) == before, "detection wrote an openIMIS table"
    assert migrated.query("SELECT count(*) FROM notifier.notifier_family_phone") == [(3,)]


def test_consent_services_write_history_rows_the_openimis_way(migrated: OpenIMISDatabase) -> None:
    before = checksums(migrated)

    result = migrated.probe("consent")

    assert result["spelling"] == migrated.family_sms
    assert result["keeps_history"] is True
    assert result["default_language"] == "sw", "first by SortOrder (sw 1, en 2, rw NULL)"
    assert result["created"] == [3, True, "sw"]
    assert "already has a notification policy" in result["duplicate"]
    assert "languageOfNotification" in result["unknown_language"]
    # (family, approval, language, current) by family and ValidityFrom: family 1's change closed its row and
    # added the new current one; the unchanged second update wrote nothing; family 2's retirement only closed
    # its current row (its older history row stays); family 3 got its first row.
    assert consent_rows(migrated) == [
        (1, True, "en", False),
        (1, False, "sw", True),
        (2, False, "en", False),
        (2, True, "sw", False),
        (3, True, "sw", True),
    ]
    assert checksums(migrated) == before, "only tblFamilySMS may be written"


def test_consent_default_language_setting_wins(migrated: OpenIMISDatabase) -> None:
    result = migrated.probe("consent", NOTIFIER_DEFAULT_LANGUAGE="en")

    assert result["default_language"] == "en"
    assert result["created"] == [3, True, "en"]


def test_a_one_row_per_family_consent_table_is_changed_in_place() -> None:
    with openimis_database("camel_pk") as db:
        insert_sample(db)
        db.manage("migrate", "--verbosity", "0")

        result = db.probe("consent")

        assert (result["spelling"], result["keeps_history"]) == ("camel", False)
        assert consent_rows(db) == [(1, False, "sw", True), (2, False, "sw", False), (3, True, "sw", True)]


def test_report_finds_areas_by_uuid_in_any_case_and_shows_nulls_blank(migrated: OpenIMISDatabase) -> None:
    result = migrated.probe("report", DISTRICT_UUID.lower())

    assert result["area"] == "District D1 District One"
    rows = {row["family_uuid"]: row for row in result["rows"]}
    assert set(rows) == {FAMILY_UUIDS[1], FAMILY_UUIDS[2], FAMILY_UUIDS[3]}
    family2 = rows[FAMILY_UUIDS[2]]
    assert (family2["head_chf_id"], family2["head_phone"], family2["member_phone"]) == (None, None, "0754000222")
    assert rows[FAMILY_UUIDS[1]]["ward"] == "unknown", "the ward has neither code nor name"
    assert (rows[FAMILY_UUIDS[1]]["approval"], rows[FAMILY_UUIDS[1]]["language"]) == (True, "en")


def test_the_family_service_and_the_demo_refuse_to_write_openimis_rows(migrated: OpenIMISDatabase) -> None:
    before = checksums(migrated)

    errors = migrated.probe("refused")

    assert errors["update_family"] == {
        "OPENIMIS_MODE": [
            "attached: a family belongs to openIMIS; change it in openIMIS (the notifier writes only consent, "
            "tblFamilySMS)"
        ]
    }
    assert list(errors["update_insuree"]) == ["OPENIMIS_MODE"]
    assert errors["load_demo"] == "OPENIMIS_MODE=attached: the demo writes openIMIS tables; run it standalone"
    assert checksums(migrated) == before


def test_attached_mode_needs_postgresql_and_a_schema_of_its_own() -> None:
    with openimis_database("lower") as db:
        sqlite = db.manage("check", check=False, DATABASE_URL="sqlite:///unused.sqlite3")
        same = db.manage("check", check=False, NOTIFIER_DB_SCHEMA="public")
        bad_mode = db.manage("check", check=False, OPENIMIS_MODE="embedded")

    assert "DATABASE_URL: OPENIMIS_MODE=attached needs the openIMIS PostgreSQL database" in sqlite.stderr
    assert "NOTIFIER_DB_SCHEMA: must differ from OPENIMIS_DB_SCHEMA ('public')" in same.stderr
    assert "OPENIMIS_MODE: expected 'standalone' or 'attached', got 'embedded'" in bad_mode.stderr


def test_the_admin_shows_openimis_rows_read_only_and_keeps_consent_editable(migrated: OpenIMISDatabase) -> None:
    before = checksums(migrated)

    status = migrated.probe("admin")

    assert status == {
        "/admin/openimis/family/": 200,
        "/admin/openimis/policy/": 200,
        "/admin/openimis/policy/101/change/": 200,  # the view-only page
        "/admin/openimis/policy/add/": 403,
        "/admin/openimis/insuree/11/change/": 200,
        "/admin/openimis/language/add/": 403,
        "/admin/openimis/location/4/delete/": 403,
        "/admin/notifier/notificationtemplate/": 200,
        "POST /admin/openimis/policy/101/change/": 403,
        "POST /admin/openimis/family/1/change/": 302,
    }
    assert checksums(migrated) == before
    # family 1 unticked its approval and chose Swahili: its row closed, a new current one
    assert [row for row in consent_rows(migrated) if row[0] == 1] == [(1, True, "en", False), (1, False, "sw", True)]


def test_two_first_consents_of_one_family_at_once_make_one_current_row(migrated: OpenIMISDatabase) -> None:
    result = migrated.probe("concurrent_create")

    assert result["outcomes"] == [
        "created",
        f"family {FAMILY_UUIDS[3]} already has a notification policy",
    ]
    current = [row for row in consent_rows(migrated) if row[0] == 3 and row[3]]
    assert len(current) == 1
