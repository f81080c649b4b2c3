"""The attached database's system check (issue 11 point 7) and `openimis_indexes` (point 6) on a real openIMIS
schema (tests/openimis_db.py), inspected as a role with exactly the README's grants."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.db import connection as default_connection
from django.db.backends.postgresql.base import DatabaseWrapper

from notifier.attached_checks import check_attached_database, inspect_database, least_privilege_sql
from notifier.openimis_indexes import RECOMMENDED_INDEXES, index_statements
from tests import openimis_db

ROLE = f"notifier_check_{os.getpid()}"
pytestmark = pytest.mark.slow  # each test copies a database (psql loads the schema once per spelling)
OWN = "notifier"
RECOMMENDED_WARNINGS = {
    "notifier_policy_current_from_idx",
    "notifier_policy_history_idx",
    "notifier_policy_effective_idx",
    "notifier_policy_expiry_idx",
}


@pytest.fixture(scope="module")
def templates() -> Iterator[dict[str, openimis_db.OpenIMISDatabase]]:
    """One loaded openIMIS database per tblFamilySMS spelling, made on first use and copied by each test (a copy
    takes a fraction of a second, loading the schema with psql several)."""
    with contextlib.ExitStack() as stack:
        made: dict[str, openimis_db.OpenIMISDatabase] = {}

        class Lazy(dict[str, openimis_db.OpenIMISDatabase]):
            def __missing__(self, spelling: str) -> openimis_db.OpenIMISDatabase:
                made[spelling] = stack.enter_context(openimis_db.openimis_database(spelling, prefix="oitpl"))
                return made[spelling]

        yield Lazy()


@pytest.fixture
def database(
    request: pytest.FixtureRequest, db: None, templates: dict[str, openimis_db.OpenIMISDatabase]
) -> Iterator[str]:
    """A fresh openIMIS database (a copy of tests/openimis_db.py's); its name. The role goes after the database."""
    spelling = getattr(request, "param", "lower")
    template = templates[spelling]
    name = f"oichk_{os.getpid()}_{next(_numbers)}"
    server = openimis_db._with_database(openimis_db.server_url(), "postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template.name}"')
    _created[name] = openimis_db.OpenIMISDatabase(
        name=name, url=openimis_db._with_database(openimis_db.server_url(), name), family_sms=spelling
    )
    try:
        yield name
    finally:
        del _created[name]
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{ROLE}"')


_numbers = itertools.count(1)
_created: dict[str, openimis_db.OpenIMISDatabase] = {}


def admin(name: str, *statements: str) -> None:
    """As the superuser, each statement on its own (autocommit), as psql runs a script."""
    for statement in statements:
        _created[name].execute(statement)


def grant_documented(name: str) -> None:
    admin(name, *least_privilege_sql(ROLE))


def inspect(name: str, role: str = ROLE) -> list[CheckMessage]:
    wrapper = DatabaseWrapper({**default_connection.settings_dict, "NAME": name, "USER": role, "PASSWORD": ""})
    try:
        return inspect_database(wrapper, "public", OWN)
    finally:
        wrapper.close()


def ids(messages: list[CheckMessage]) -> list[str]:
    return sorted(str(message.id) for message in messages)


def errors(messages: list[CheckMessage]) -> list[str]:
    return [f"{message.id} {message.msg}" for message in messages if message.is_serious()]


@pytest.mark.parametrize("database", ["lower", "camel", "camel_pk"], indirect=True)
def test_the_documented_grants_pass_with_only_the_recommended_indexes_missing(database: str) -> None:
    grant_documented(database)

    messages = inspect(database)

    assert errors(messages) == []
    assert ids(messages) == ["notifier.W407"] * 4
    assert {message.msg.split()[2] for message in messages} == RECOMMENDED_WARNINGS
    assert all("CREATE INDEX CONCURRENTLY IF NOT EXISTS" in str(message.hint) for message in messages)


def test_the_indexes_printed_by_the_command_silence_the_warnings(database: str) -> None:
    grant_documented(database)
    out = io.StringIO()
    call_command("openimis_indexes", stdout=out)
    printed = [line for line in out.getvalue().splitlines() if line.startswith("CREATE")]
    assert printed == index_statements("public")
    assert printed[0] == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "notifier_policy_current_from_idx" ON "public"."tblPolicy" '
        '("ValidityFrom") WHERE "ValidityTo" IS NULL;'
    )

    admin(database, *printed)  # psql-style, each statement on its own in autocommit

    assert inspect(database) == []


def test_an_equivalent_index_of_another_name_counts(database: str) -> None:
    grant_documented(database)
    admin(database, 'CREATE INDEX dba_policy_expiry ON "tblPolicy" ("ExpiryDate", "PolicyStatus")')

    names = {message.msg.split()[2] for message in inspect(database)}

    assert names == RECOMMENDED_WARNINGS - {"notifier_policy_expiry_idx"}


def test_an_invalid_index_is_named_with_the_drop_to_run(database: str) -> None:
    grant_documented(database)
    admin(
        database,
        'CREATE INDEX notifier_policy_expiry_idx ON "tblPolicy" ("ExpiryDate")',
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.notifier_policy_expiry_idx'::regclass",
    )

    invalid = [message for message in inspect(database) if message.id == "notifier.W408"]

    assert [str(message.hint).split(";")[0] for message in invalid] == [
        'DROP INDEX CONCURRENTLY "public"."notifier_policy_expiry_idx"'
    ]


def test_a_missing_select_grant_is_named_with_its_grant(database: str) -> None:
    grant_documented(database)
    admin(database, f'REVOKE SELECT ON "tblPolicy" FROM "{ROLE}"')  # noqa: S608 - a role name of the test run

    found = [message for message in inspect(database) if message.is_serious()]

    assert [message.id for message in found] == ["notifier.E405"]
    assert found[0].msg.startswith(f"role {ROLE} lacks SELECT on public.tblPolicy (columns ")
    assert found[0].hint == f'GRANT SELECT ON "public"."tblPolicy" TO "{ROLE}";'


def test_missing_family_sms_writes_and_schema_usage_are_named(database: str) -> None:
    grant_documented(database)
    admin(
        database,
        f'REVOKE INSERT, UPDATE ON "tblFamilySMS" FROM "{ROLE}"',
        f'REVOKE USAGE ON SCHEMA public FROM "{ROLE}"',
    )
    admin(database, "REVOKE USAGE ON SCHEMA public FROM PUBLIC")

    hints = sorted(str(message.hint) for message in inspect(database) if message.is_serious())

    assert hints == [
        f'GRANT INSERT ON "public"."tblFamilySMS" TO "{ROLE}";',
        f'GRANT UPDATE ON "public"."tblFamilySMS" TO "{ROLE}";',
        f'GRANT USAGE ON SCHEMA "public" TO "{ROLE}";',
    ]


def test_a_missing_service_schema_is_named_with_its_create(database: str) -> None:
    admin(database, *[statement for statement in least_privilege_sql(ROLE) if "CREATE SCHEMA" not in statement])

    found = [message for message in inspect(database) if message.is_serious()]

    assert [(message.id, message.hint) for message in found] == [
        ("notifier.E406", f'CREATE SCHEMA "notifier" AUTHORIZATION "{ROLE}";')
    ]


def test_a_missing_schema_the_role_may_create_is_a_warning_for_migrate_to_fix(database: str) -> None:
    """`migrate` runs the database checks before it creates the schema: that must not stop it."""
    admin(database, *[statement for statement in least_privilege_sql(ROLE) if "CREATE SCHEMA" not in statement])
    admin(database, f'GRANT CREATE ON DATABASE "{database}" TO "{ROLE}"')

    found = [message for message in inspect(database) if message.id == "notifier.W406"]

    assert [message.is_serious() for message in found] == [False]
    assert found[0].msg.startswith("schema notifier (NOTIFIER_DB_SCHEMA, the service's own tables) does not exist yet")
    assert errors(inspect(database)) == []


def test_a_missing_column_and_a_wrong_type_are_named(database: str) -> None:
    grant_documented(database)
    admin(
        database,
        'ALTER TABLE "tblPolicy" RENAME COLUMN "EffectiveDate" TO "EffectiveOn"',  # views follow a rename
        'ALTER TABLE "tblPolicy" RENAME COLUMN "PolicyStatus" TO "PolicyStatusOld"',
        'ALTER TABLE "tblPolicy" ADD COLUMN "PolicyStatus" varchar(5)',
    )

    found = sorted(errors(inspect(database)))

    assert len(found) == 2
    assert found[0].startswith("notifier.E402 column public.tblPolicy.EffectiveDate not found")
    assert found[1].startswith("notifier.E403 column public.tblPolicy.PolicyStatus is character varying(5), the model ")
    assert found[1].endswith("needs smallint")


def test_an_unknown_family_sms_spelling_is_named(database: str) -> None:
    grant_documented(database)
    admin(database, 'ALTER TABLE "tblFamilySMS" RENAME COLUMN approvalofsms TO "SmsOk"')

    found = [message for message in inspect(database) if message.is_serious()]

    assert [message.id for message in found] == ["notifier.E404"]
    assert found[0].msg == (
        "public.tblFamilySMS has columns SmsOk, familyid, languageofsms, validityfrom, validityto: neither spelling "
        "the service knows"
    )


def test_a_missing_table_is_named(database: str) -> None:
    grant_documented(database)
    admin(database, 'ALTER TABLE "tblLanguages" RENAME TO "tblLanguagesOld"')

    found = errors(inspect(database))

    assert found == ["notifier.E401 table public.tblLanguages not found (the models read it)"]


def test_more_rights_than_needed_are_a_warning(database: str) -> None:
    grant_documented(database)
    admin(database, f'GRANT UPDATE, DELETE ON "tblInsuree" TO "{ROLE}"')

    extra = [message for message in inspect(database) if message.id == "notifier.W409"]

    assert [message.msg for message in extra] == [
        f"role {ROLE} may UPDATE/DELETE public.tblInsuree; the service only reads it"
    ]


def test_standalone_mode_checks_nothing(settings: Any) -> None:
    settings.OPENIMIS_MODE = "standalone"

    assert check_attached_database(None, databases=["default"]) == []


def test_without_a_database_the_check_does_nothing(settings: Any) -> None:
    settings.OPENIMIS_MODE = "attached"

    assert check_attached_database(None) == []


def test_the_index_list_matches_what_standalone_migrations_create() -> None:
    from django.apps import apps
    from django.db.models import Field

    policy = apps.get_model("openimis", "Policy")

    def column(name: str) -> str:
        field = policy._meta.get_field(name)
        assert isinstance(field, Field)
        return str(field.column)

    standalone = {
        index.name: (
            tuple(column(name) for name in index.fields),
            None if index.condition is None else str(index.condition),
        )
        for index in policy._meta.indexes
    }
    conditions = {'"ValidityTo" IS NULL': "(AND: ('validity_to__isnull', True))", None: None}
    conditions['"ValidityTo" IS NOT NULL'] = "(AND: ('validity_to__isnull', False))"

    for index in RECOMMENDED_INDEXES:
        assert standalone[index.model_index] == (index.columns, conditions[index.where])


def test_apply_refuses_in_standalone_mode(settings: Any) -> None:
    settings.OPENIMIS_MODE = "standalone"
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="OPENIMIS_MODE: standalone; `migrate` creates these indexes"):
        call_command("openimis_indexes", "--apply", stdout=io.StringIO())


def test_the_readme_shows_exactly_the_grants_the_service_is_tested_with() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Attach to your openIMIS database", 1)[1]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]

    assert block.splitlines() == least_privilege_sql()
    assert block.splitlines()[3] == (
        'GRANT SELECT ON "public"."tblFamilies", "public"."tblInsuree", "public"."tblLanguages", '
        '"public"."tblLocations", "public"."tblOfficer", "public"."tblPolicy", "public"."tblProduct" TO "notifier";'
    )


def test_apply_creates_the_indexes_concurrently_once_and_the_role_may_not(database: str) -> None:
    grant_documented(database)
    oi = _created[database]
    role_url = oi.url.replace("postgres@", f"{ROLE}@", 1)
    assert role_url != oi.url

    refused = oi.manage("openimis_indexes", "--apply", check=False, DATABASE_URL=role_url)
    first = oi.manage("openimis_indexes", "--apply")  # as the tables' owner (here the superuser)
    again = oi.manage("openimis_indexes", "--apply")

    assert refused.returncode == 1
    assert "must be owner of table tblPolicy" in refused.stderr
    assert "creating an index needs the owner of the openIMIS tables" in refused.stderr
    assert [line.split(":")[0] for line in first.stdout.splitlines()] == sorted(RECOMMENDED_WARNINGS, key=order)
    assert all(line.split(": ")[1].startswith("created in ") for line in first.stdout.splitlines())
    assert again.stdout.splitlines() == [f"{name}: exists" for name in sorted(RECOMMENDED_WARNINGS, key=order)]
    assert inspect(database) == []


def order(name: str) -> int:
    return [index.name for index in RECOMMENDED_INDEXES].index(name)
