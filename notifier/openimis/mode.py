"""Who owns the openIMIS tables (`OPENIMIS_MODE`), where they are, and how tblFamilySMS spells its columns.

Attached, the service's connection has `search_path` = `NOTIFIER_DB_SCHEMA` only: everything Django and the
notifier create lands there, and openIMIS's own `django_migrations`/`auth_*` in `public` are invisible to it. The
openIMIS tables are reached schema-qualified (`"public"."tblPolicy"`) through the models' `db_table`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models.signals import pre_migrate

from notifier.settings import get_settings

logger = logging.getLogger("notifier.openimis")

STANDALONE = "standalone"
ATTACHED = "attached"
MODES = (STANDALONE, ATTACHED)

# Model names (lower case) of the openIMIS mirror, in this app and under their former app label "notifier".
OPENIMIS_MODEL_NAMES = frozenset(
    {"location", "officer", "product", "family", "insuree", "policy", "language", "familynotification"}
)
FAMILY_SMS_TABLE = "tblFamilySMS"
# Field name -> column, per spelling. `camel`: the openIMIS module's model (and standalone's table); `lower`: the
# PostgreSQL scripts create the table with unquoted names, which PostgreSQL folds to lower case.
FAMILY_SMS_SPELLINGS: dict[str, dict[str, str]] = {
    "camel": {
        "family": "FamilyID",
        "approval_of_sms": "ApprovalOfSMS",
        "language_of_sms": "LanguageOfSMS",
        "validity_from": "ValidityFrom",
        "validity_to": "ValidityTo",
    },
}
FAMILY_SMS_SPELLINGS["lower"] = {name: column.lower() for name, column in FAMILY_SMS_SPELLINGS["camel"].items()}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(name: str, value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ImproperlyConfigured(f"{name}: not a plain PostgreSQL identifier (letters, digits, _): {value!r}")
    return value


def is_attached() -> bool:
    return getattr(settings, "OPENIMIS_MODE", STANDALONE) == ATTACHED


def notifier_schema() -> str:
    return get_settings().db_schema


def openimis_schema() -> str:
    return str(getattr(settings, "OPENIMIS_DB_SCHEMA", "public"))


def openimis_table(name: str) -> str:
    """The db_table of an openIMIS table: plain when standalone; schema-qualified when attached.

    Django quotes a table name as `"<name>"`, so `public"."tblPolicy` becomes `"public"."tblPolicy"`.
    """
    if is_attached():
        return f'{openimis_schema()}"."{name}'
    return name


def quoted_openimis_table(name: str) -> str:
    """The SQL reference of an openIMIS table, quoted (schema-qualified when attached)."""
    if is_attached():
        return f'"{openimis_schema()}"."{name}"'
    return f'"{name}"'


# --- tblFamilySMS spelling ----------------------------------------------------------------------------------

_spelling: dict[str, str] = {}


def family_sms_spelling() -> str:
    """`camel` or `lower`: standalone always `camel` (the migrations create it so); attached from
    `OPENIMIS_FAMILYSMS_COLUMNS` or, when `auto`, detected on the first connection."""
    if not is_attached():
        return "camel"
    configured = str(getattr(settings, "OPENIMIS_FAMILYSMS_COLUMNS", "auto"))
    if configured in FAMILY_SMS_SPELLINGS:
        return configured
    if "detected" not in _spelling:
        detect_family_sms_spelling(connections["default"])
    return _spelling.get("detected", "lower")


def detect_family_sms_spelling(connection: BaseDatabaseWrapper) -> str | None:
    """Read tblFamilySMS's columns from information_schema; None when the table is not visible to this role."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [openimis_schema(), FAMILY_SMS_TABLE],
        )
        columns = {str(row[0]) for row in cursor.fetchall()}
    for spelling, mapping in FAMILY_SMS_SPELLINGS.items():
        if set(mapping.values()) <= columns:
            _spelling["detected"] = spelling
            apply_family_sms_spelling(spelling)
            return spelling
    logger.warning(
        "%s.%s: no column set of a known spelling (found %s); assuming lower case until a later connection finds it",
        openimis_schema(),
        FAMILY_SMS_TABLE,
        sorted(columns) or "no table",
    )
    apply_family_sms_spelling("lower")  # 00_schema.sql's; not remembered, so the next connection looks again
    return None


def apply_family_sms_spelling(spelling: str) -> None:
    """Point the FamilyNotification model's fields at the columns of `spelling`."""
    model = apps.get_model("openimis", "FamilyNotification")  # the registry: the models module imports this one
    for name, column in FAMILY_SMS_SPELLINGS[spelling].items():
        field = model._meta.get_field(name)
        # Only the column the SQL uses: db_column (what migrations compare) keeps the standalone spelling.
        field.column = column  # type: ignore[union-attr]


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.alias != "default" or not is_attached() or "detected" in _spelling:
        return
    configured = str(getattr(settings, "OPENIMIS_FAMILYSMS_COLUMNS", "auto"))
    if configured in FAMILY_SMS_SPELLINGS:
        _spelling["detected"] = configured
        apply_family_sms_spelling(configured)
        return
    detect_family_sms_spelling(connection)


# --- the notifier's schema ----------------------------------------------------------------------------------


def ensure_notifier_schema(using: str = "default") -> bool:
    """Create `NOTIFIER_DB_SCHEMA` when attached and missing; True when it was created.

    A role without CREATE on the database gets a clear error; the DBA can pre-create the schema owned by the
    service's role (`CREATE SCHEMA notifier AUTHORIZATION notifier_service`).
    """
    connection = connections[using]
    if not is_attached() or connection.vendor != "postgresql":
        return False
    schema = notifier_schema()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        if cursor.fetchone():
            return False
        cursor.execute("SELECT has_database_privilege(current_database(), 'CREATE'), current_user")
        row = cursor.fetchone()
        may_create, role = (bool(row[0]), str(row[1])) if row else (False, "?")
        if not may_create:
            raise ImproperlyConfigured(
                f"NOTIFIER_DB_SCHEMA: schema {schema!r} does not exist and role {role!r} may not create it; "
                f"ask the DBA to run: CREATE SCHEMA {schema} AUTHORIZATION {role};"
            )
        cursor.execute(f"CREATE SCHEMA {connection.ops.quote_name(schema)}")
    logger.info("created schema %s", schema)
    return True


def _on_pre_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    if ensure_notifier_schema(using) and kwargs.get("verbosity", 1) >= 1:
        print(f"  Created schema {notifier_schema()!r} for the notifier's and Django's tables")


def connect_signals() -> None:
    from django.apps import apps

    connection_created.connect(_on_connection_created, dispatch_uid="notifier.openimis.family_sms_spelling")
    pre_migrate.connect(
        _on_pre_migrate, sender=apps.get_app_config("openimis"), dispatch_uid="notifier.openimis.schema"
    )


class OpenIMISRouter:
    """Attached: no migration creates, alters or indexes an openIMIS table, and no data migration writes one."""

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if not is_attached():
            return None
        if app_label == "openimis" or hints.get("openimis"):
            return False
        if app_label == "notifier" and model_name in OPENIMIS_MODEL_NAMES:
            return False
        return None
