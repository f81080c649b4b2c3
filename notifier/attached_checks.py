"""System check of an attached openIMIS database (SPEC §14 "Checked at start"): `manage.py check --database default`.

Compares the database with what the models need and names every mismatch with its fix: a missing table or
column, a wrong type, an unknown tblFamilySMS spelling, missing rights (SELECT on the openIMIS tables read,
SELECT/INSERT/UPDATE on tblFamilySMS, USAGE on the openIMIS schema, USAGE/CREATE on the service's own schema) as
errors; a missing recommended index (notifier.openimis_indexes) and more rights than needed as warnings.
Standalone, the service owns these tables: the check does nothing. Tagged `database`, so Django runs it only
when asked for a database (it queries the catalog, never the data).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from notifier.openimis.mode import is_attached, notifier_schema, openimis_schema
from notifier.openimis_indexes import RECOMMENDED_INDEXES, RecommendedIndex

FAMILY_SMS = "tblFamilySMS"
FAMILY_SMS_COLUMNS = ("FamilyID", "ApprovalOfSMS", "LanguageOfSMS", "ValidityFrom", "ValidityTo")
SPELLINGS = {
    "lower case (openIMIS PostgreSQL scripts)": tuple(column.lower() for column in FAMILY_SMS_COLUMNS),
    "quoted CamelCase (openIMIS module)": FAMILY_SMS_COLUMNS,
}
INTEGERS = {"smallint", "integer", "bigint"}
TYPE_ALIASES = {
    "varchar": "character varying",
    "char": "character",
    "timestamptz": "timestamp with time zone",
    "serial": "integer",
    "bigserial": "bigint",
    "smallserial": "smallint",
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "int2": "smallint",
    "bool": "boolean",
    "decimal": "numeric",
}


def table_of(model: type[Model]) -> str:
    """The bare openIMIS table name (attached, db_table is schema-qualified: `public"."tblPolicy`)."""
    return model._meta.db_table.split('"."')[-1]


def openimis_models() -> list[type[Model]]:
    """The models of the openIMIS mirror (app `openimis`), by table name."""
    return sorted(apps.get_app_config("openimis").get_models(), key=table_of)


def base_type(text: str) -> str:
    """`varchar(36)` / `character varying(36)` -> `character varying`; `numeric(18, 2)` -> `numeric`."""
    name = re.sub(r"\(.*?\)", "", text.strip().lower()).strip()
    name = re.sub(r"\s+", " ", name)
    return TYPE_ALIASES.get(name, name)


def compatible(wanted: str, found: str) -> bool:
    wanted_base, found_base = base_type(wanted), base_type(found)
    return wanted_base == found_base or {wanted_base, found_base} <= INTEGERS


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@register(Tags.database)
def check_attached_database(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    databases: Iterable[str] | None = kwargs.get("databases")
    if not databases or not is_attached():
        return []
    messages: list[CheckMessage] = []
    for alias in databases:
        if alias == "default":
            messages.extend(inspect_database(connections[alias], openimis_schema(), notifier_schema()))
    return messages


def inspect_database(connection: BaseDatabaseWrapper, schema: str, own_schema: str) -> list[CheckMessage]:
    """Every mismatch between the database behind `connection` and the openIMIS models, with its fix."""
    if connection.vendor != "postgresql":
        return [
            Error(
                f"OPENIMIS_MODE=attached needs the openIMIS PostgreSQL database, DATABASE_URL is {connection.vendor}",
                hint="Point DATABASE_URL at the openIMIS database, or set OPENIMIS_MODE=standalone.",
                id="notifier.E400",
            )
        ]
    try:
        return _Inspection(connection, schema, own_schema).run()
    except DatabaseError as exc:
        return [
            Error(
                f"cannot inspect the attached database: {exc}".strip(),
                hint="Check DATABASE_URL and that the role may connect.",
                id="notifier.E400",
            )
        ]


class _Inspection:
    def __init__(self, connection: BaseDatabaseWrapper, schema: str, own_schema: str) -> None:
        self.connection = connection
        self.schema = schema
        self.own_schema = own_schema
        self.messages: list[CheckMessage] = []

    def fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall())

    def error(self, text: str, hint: str, code: int) -> None:
        self.messages.append(Error(text, hint=hint, id=f"notifier.E{code}"))

    def warning(self, text: str, hint: str, code: int) -> None:
        self.messages.append(Warning(text, hint=hint, id=f"notifier.W{code}"))

    def run(self) -> list[CheckMessage]:
        self.role = self.fetch("SELECT current_user", [])[0][0]
        tables = {table_of(model) for model in openimis_models()}
        columns = self.columns(tables)
        self.check_schemas()
        for model in openimis_models():
            table = table_of(model)
            if table not in columns:
                self.error(
                    f"table {self.schema}.{table} not found (the models read it)",
                    f"Set OPENIMIS_DB_SCHEMA to the schema of the openIMIS tables (now {self.schema!r}), or point "
                    "DATABASE_URL at the openIMIS database.",
                    401,
                )
                continue
            names = self.check_columns(model, columns[table])
            if names is not None:
                self.check_grants(table, names)
        self.check_extra_rights(tables & set(columns))
        self.check_indexes(set(columns))
        return self.messages

    def columns(self, tables: set[str]) -> dict[str, dict[str, str]]:
        """Column -> type per table found; also remembers each table's oid (rights are asked by oid: by name,
        PostgreSQL needs USAGE on the schema just to resolve it)."""
        rows = self.fetch(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), c.oid FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND a.attnum > 0 AND NOT a.attisdropped",
            [self.schema, sorted(tables)],
        )
        found: dict[str, dict[str, str]] = {}
        self.oids: dict[str, int] = {}
        for table, column, type_name, oid in rows:
            found.setdefault(table, {})[column] = type_name
            self.oids[table] = oid
        return found

    def check_schemas(self) -> None:
        schema, own, role = self.schema, self.own_schema, self.role
        if not self.fetch("SELECT has_schema_privilege(%s, 'USAGE')", [schema])[0][0]:
            self.error(
                f"role {role} lacks USAGE on schema {schema} (the openIMIS tables)",
                f"GRANT USAGE ON SCHEMA {_q(schema)} TO {_q(role)};",
                405,
            )
        exists = self.fetch("SELECT 1 FROM pg_namespace WHERE nspname = %s", [own])
        if not exists:
            if self.fetch("SELECT has_database_privilege(current_database(), 'CREATE')", [])[0][0]:
                # migrate runs this check before it creates the schema (pre_migrate): not an error then
                self.warning(
                    f"schema {own} (NOTIFIER_DB_SCHEMA, the service's own tables) does not exist yet; `migrate` "
                    f"will create it (role {role} may create schemas in this database)",
                    f"Run `manage.py migrate`, or let the DBA create it: CREATE SCHEMA {_q(own)} AUTHORIZATION "
                    f"{_q(role)}; (then the role needs no CREATE on the database)",
                    406,
                )
                return
            self.error(
                f"schema {own} (NOTIFIER_DB_SCHEMA, the service's own tables) does not exist and role {role} may not "
                "create it",
                f"CREATE SCHEMA {_q(own)} AUTHORIZATION {_q(role)};",
                406,
            )
            return
        for right in ("USAGE", "CREATE"):
            if not self.fetch("SELECT has_schema_privilege(%s, %s)", [own, right])[0][0]:
                self.error(
                    f"role {role} lacks {right} on schema {own} (the service's own tables)",
                    f"ALTER SCHEMA {_q(own)} OWNER TO {_q(role)};",
                    406,
                )

    def check_columns(self, model: type[Model], found: dict[str, str]) -> list[str] | None:
        """Errors for missing columns and wrong types; the table's real column names the model reads (None when
        a tblFamilySMS of unknown spelling makes them unknowable)."""
        table = table_of(model)
        lookup = {name: name for name in found}
        if table == FAMILY_SMS:
            spelling = next((label for label, names in SPELLINGS.items() if set(names) <= set(found)), None)
            if spelling is None:
                self.error(
                    f"{self.schema}.{FAMILY_SMS} has columns {', '.join(sorted(found))}: neither spelling the "
                    f"service knows",
                    "Expected the openIMIS columns familyid, approvalofsms, languageofsms, validityfrom, validityto "
                    '(unquoted, as the openIMIS PostgreSQL scripts create them) or "FamilyID", "ApprovalOfSMS", '
                    '"LanguageOfSMS", "ValidityFrom", "ValidityTo" (quoted, as the openIMIS module does).',
                    404,
                )
                return None
            lookup = {name.lower(): name for name in found}  # the model reads either spelling
        needed = []
        for field in model._meta.concrete_fields:
            column = field.column
            real = lookup.get(column.lower() if table == FAMILY_SMS else column)
            if real is None:
                self.error(
                    f"column {self.schema}.{table}.{column} not found ({model._meta.label}.{field.name})",
                    f"This openIMIS database lacks a column the service reads: upgrade openIMIS, or check that "
                    f"OPENIMIS_DB_SCHEMA ({self.schema!r}) holds the openIMIS tables.",
                    402,
                )
                continue
            needed.append(real)
            wanted = field.db_type(self.connection)
            if wanted and not compatible(wanted, found[real]):
                self.error(
                    f"column {self.schema}.{table}.{real} is {found[real]}, the model "
                    f"{model._meta.label}.{field.name} needs {wanted}",
                    "The service's models must match openIMIS's types: fix the model (SPEC §14: the same column "
                    "types as 00_schema.sql), never the openIMIS table.",
                    403,
                )
        return needed

    def check_grants(self, table: str, columns: list[str]) -> None:
        qualified = f"{_q(self.schema)}.{_q(table)}"
        rights = ("SELECT", "INSERT", "UPDATE") if table == FAMILY_SMS else ("SELECT",)
        for right in rights:
            missing = [
                column
                for column in columns
                if not self.fetch("SELECT has_column_privilege(%s::oid, %s, %s)", [self.oids[table], column, right])[0][
                    0
                ]
            ]
            if missing:
                self.error(
                    f"role {self.role} lacks {right} on {self.schema}.{table} (columns {', '.join(missing)})",
                    f"GRANT {right} ON {qualified} TO {_q(self.role)};",
                    405,
                )

    def check_extra_rights(self, tables: set[str]) -> None:
        """The service writes no openIMIS table but tblFamilySMS: a role that could is more than it needs."""
        for table in sorted(tables - {FAMILY_SMS}):
            qualified = f"{_q(self.schema)}.{_q(table)}"
            rights = [
                right
                for right in ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
                if self.fetch("SELECT has_table_privilege(%s::oid, %s)", [self.oids[table], right])[0][0]
            ]
            if rights:
                self.warning(
                    f"role {self.role} may {'/'.join(rights)} {self.schema}.{table}; the service only reads it",
                    f"REVOKE {', '.join(rights)} ON {qualified} FROM {_q(self.role)}; (least privilege: README, "
                    '"Attach to your openIMIS database")',
                    409,
                )

    def check_indexes(self, tables: set[str]) -> None:
        for index in RECOMMENDED_INDEXES:
            if index.table not in tables:
                continue
            existing = self.fetch(
                "SELECT c.relname, i.indisvalid, pg_get_expr(i.indpred, i.indrelid), "
                "ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %s AND t.relname = %s",
                [self.schema, index.table],
            )
            if any(valid and _serves(index, list(names), predicate) for _, valid, predicate, names in existing):
                continue
            if any(name == index.name and not valid for name, valid, _, _ in existing):
                self.warning(
                    f"index {self.schema}.{index.name} is INVALID (an interrupted CREATE INDEX CONCURRENTLY)",
                    f"DROP INDEX CONCURRENTLY {_q(self.schema)}.{_q(index.name)}; then `manage.py openimis_indexes "
                    "--apply` (or its printed statement).",
                    408,
                )
                continue
            self.warning(
                f"recommended index {index.name} on {self.schema}.{index.table} ({', '.join(index.columns)}) is "
                f"absent: {index.why} reads the whole table",
                f"{index.statement(self.schema)} (`manage.py openimis_indexes` prints all, --apply runs them)",
                407,
            )


def _normal(predicate: str | None) -> str:
    return re.sub(r"[()\s]", "", predicate or "").lower()


def _serves(index: RecommendedIndex, names: list[str], predicate: str | None) -> bool:
    """An index with our columns first, and no predicate or ours, does the job whatever its name."""
    if tuple(names[: len(index.columns)]) != index.columns:
        return False
    return predicate is None or _normal(predicate) == _normal(index.where)


def least_privilege_sql(role: str = "notifier", schema: str = "public", own_schema: str = "notifier") -> list[str]:
    """The exact grants the service needs attached (README "Attach to your openIMIS database" shows them for the
    defaults; tests/test_attached_e2e.py runs the service as a role with exactly these)."""
    read = [f"{_q(schema)}.{_q(table_of(model))}" for model in openimis_models()]
    family_sms = f"{_q(schema)}.{_q(FAMILY_SMS)}"
    return [
        f"CREATE ROLE {_q(role)} LOGIN PASSWORD 'change-me';",
        f"CREATE SCHEMA {_q(own_schema)} AUTHORIZATION {_q(role)};",
        f"GRANT USAGE ON SCHEMA {_q(schema)} TO {_q(role)};",
        f"GRANT SELECT ON {', '.join(name for name in read if name != family_sms)} TO {_q(role)};",
        f"GRANT SELECT, INSERT, UPDATE ON {family_sms} TO {_q(role)};",
    ]
