"""Settings, all from the environment. Defaults give the embedded mode: SQLite under var/, in-process broker."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from notifier.config import ConfigError
from notifier.settings import from_environment

BASE_DIR = Path(__file__).resolve().parent.parent
# Every NOTIFIER_* variable and the NOTIFIER dict (NOTIFIER_CONFIG / NOTIFIER_CONFIG_FILE), read and validated once
# by one typed object (notifier.settings) and published below as Django settings of the same names.
try:
    _notifier = from_environment()
except ConfigError as _exc:
    raise ImproperlyConfigured(str(_exc)) from None
VAR_DIR = Path(_notifier.var_dir or BASE_DIR / "var")


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (1/0, true/false), got {value!r}")


def _env_int(name: str, default: int) -> int:  # non-NOTIFIER variables (CELERY_VISIBILITY_TIMEOUT)
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {value!r}") from None
    if number < 1:
        raise ImproperlyConfigured(f"{name}: must be at least 1, got {number}")
    return number


DEBUG = _env_bool("DJANGO_DEBUG", False)
# No broker configured means the embedded mode: tasks run in-process (always eager) on the memory transport.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or "memory://"
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("memory://")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "").strip()
if not SECRET_KEY:
    # A public key signs sessions anyone can forge: only for DEBUG and the embedded mode (`make demo`, the test
    # suite: one process, no broker). A service with a broker (web, worker, beat) needs its own.
    if not (DEBUG or EMBEDDED_BROKER):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY: must be set (e.g. DJANGO_SECRET_KEY=$(openssl rand -hex 32)); the public development "
            "key is used only with DJANGO_DEBUG=1 or in the embedded mode (no CELERY_BROKER_URL)"
        )
    SECRET_KEY = "embedded-mode-only-not-a-secret"  # noqa: S105 - only for DEBUG and the embedded mode
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")]
# Behind a reverse proxy on https://notifier.example.org: DJANGO_CSRF_TRUSTED_ORIGINS=https://notifier.example.org
# (comma-separated) and DJANGO_SECURE_PROXY_SSL_HEADER=1 when the proxy sets X-Forwarded-Proto (and strips the
# client's own); then secure cookies follow.
CSRF_TRUSTED_ORIGINS = [
    origin.strip() for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if origin.strip()
]
for _origin in CSRF_TRUSTED_ORIGINS:
    if "://" not in _origin:
        raise ImproperlyConfigured(f"DJANGO_CSRF_TRUSTED_ORIGINS: {_origin!r} needs its scheme, e.g. https://{_origin}")
if _env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "project.admin_config.NotifierAdminConfig",  # django.contrib.admin with the service's own site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "notifier.openimis",
    "notifier",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and JavaScript) from the web process itself, under gunicorn and runserver alike.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "notifier.safe_input.RefuseUnstorableQueryMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'notifier.sqlite3'}"
try:
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")))
    }
except ValueError:
    raise ImproperlyConfigured(
        f"DATABASE_URL: unknown scheme {DATABASE_URL.partition(':')[0]!r}; use "
        "postgres://user:password@host:5432/name (or sqlite:///path/file.sqlite3), or unset it for the embedded SQLite"
    ) from None
if DATABASES["default"]["ENGINE"] not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
    raise ImproperlyConfigured(
        f"DATABASE_URL: {DATABASE_URL.partition(':')[0]!r} databases are not supported; use postgres://... or sqlite:///..."
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30

# --- openIMIS: who owns its tables (SPEC §14) --------------------------------------------------------------------
# standalone (default): the service creates its own copies of the openIMIS tables (demo, tests, no openIMIS).
# attached: DATABASE_URL is the openIMIS PostgreSQL database. Everything the service and Django create lives in
# NOTIFIER_DB_SCHEMA, the only schema on the connection's search_path; the openIMIS tables are read
# schema-qualified in OPENIMIS_DB_SCHEMA and never created, altered, indexed or written (except tblFamilySMS).
OPENIMIS_MODE = os.environ.get("OPENIMIS_MODE", "").strip().lower() or "standalone"
if OPENIMIS_MODE not in ("standalone", "attached"):
    raise ImproperlyConfigured(f"OPENIMIS_MODE: expected 'standalone' or 'attached', got {OPENIMIS_MODE!r}")
OPENIMIS_DB_SCHEMA = os.environ.get("OPENIMIS_DB_SCHEMA", "").strip() or "public"
# tblFamilySMS's column spelling: auto (detected from information_schema), lower (familyid, ...) or camel ("FamilyID").
OPENIMIS_FAMILYSMS_COLUMNS = os.environ.get("OPENIMIS_FAMILYSMS_COLUMNS", "").strip().lower() or "auto"
if OPENIMIS_FAMILYSMS_COLUMNS not in ("auto", "lower", "camel"):
    raise ImproperlyConfigured(
        f"OPENIMIS_FAMILYSMS_COLUMNS: expected 'auto', 'lower' or 'camel', got {OPENIMIS_FAMILYSMS_COLUMNS!r}"
    )
if OPENIMIS_MODE == "attached":
    _IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    for _name, _value in (("NOTIFIER_DB_SCHEMA", _notifier.db_schema), ("OPENIMIS_DB_SCHEMA", OPENIMIS_DB_SCHEMA)):
        if not _IDENT.match(_value):
            raise ImproperlyConfigured(f"{_name}: not a plain PostgreSQL identifier (letters, digits, _): {_value!r}")
    if _notifier.db_schema == OPENIMIS_DB_SCHEMA:
        raise ImproperlyConfigured(
            f"NOTIFIER_DB_SCHEMA: must differ from OPENIMIS_DB_SCHEMA ({OPENIMIS_DB_SCHEMA!r}): openIMIS keeps its own "
            "django_migrations and auth tables there"
        )
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL: OPENIMIS_MODE=attached needs the openIMIS PostgreSQL database")
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c search_path={_notifier.db_schema}".strip()
DATABASE_ROUTERS = ["notifier.openimis.mode.OpenIMISRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en"
TIME_ZONE = os.environ.get("TIME_ZONE", "Africa/Dar_es_Salaam")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` writes here (bin/serve and the image run it); WhiteNoise serves it with far-future
# caching and gzip. Files not collected yet are still found in the apps (WHITENOISE_USE_FINDERS), so a checkout
# that only ran `migrate` (the demo, `runserver`) shows a styled admin too.
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", "") or VAR_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
with contextlib.suppress(OSError):  # WhiteNoise warns on every start when the directory is missing
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The report's sign-in page (any active user; the admin keeps its own, staff-only login).
LOGIN_URL = "notifier:report_login"
LOGIN_REDIRECT_URL = "notifier:report_page"

# --- Celery -------------------------------------------------------------------------------------------------
# (CELERY_BROKER_URL and EMBEDDED_BROKER are set above, with SECRET_KEY.)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = EMBEDDED_BROKER
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "notifier.beat:LockedDatabaseScheduler"
# acks_late: a message stays on the broker until its task finished, so a killed worker's task is delivered again.
# The Redis transport gives an unacknowledged message to another worker after visibility_timeout, so it must be
# longer than the longest task: a delivery chunk of NOTIFIER_DELIVERY_CHUNK_SIZE (50) messages, each trying at most
# every enabled account once (connect + read timeout = 20 s per call, two accounts in the default config), is about
# 2000 s at worst; one hour leaves room. Delivery claims each row under a lease it proves before every send, so a
# task that runs twice (or a second worker while the first still runs) sends nothing twice; a task lost with its
# worker is covered by the sweeper once the rows' leases expire, whatever this timeout.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
# Task events, so that Flower shows the tasks and not only the workers.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_SERIALIZER = "json"
# Database connections in Celery workers: kept across tasks for NOTIFIER_WORKER_CONN_MAX_AGE seconds (see
# project/celery.py); Celery itself then only closes them every CELERY_DB_REUSE_MAX tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_ACCEPT_CONTENT = ["json"]

# Redis for locks, circuit breakers and rate limits shared by all workers. Empty: in-process (embedded mode).
REDIS_URL = os.environ.get("REDIS_URL", "")

# --- The notifier ------------------------------------------------------------------------------------------
# NOTIFIER (the dict) and NOTIFIER_<NAME> for every field of notifier.settings.NotifierSettings (defaults, meaning and
# validation there; tests/test_config.py checks this list is complete): what a test overrides the Django way and
# notifier.settings.get_settings() reads back.
NOTIFIER: dict[str, Any] = _notifier.config.model_dump()
NOTIFIER_DEFAULT_REGION = _notifier.default_region
NOTIFIER_DEFAULT_LANGUAGE = _notifier.default_language
NOTIFIER_ENABLE_TEST_SMS = _notifier.enable_test_sms
NOTIFIER_METRICS_TOKEN = _notifier.metrics_token
NOTIFIER_PUBLIC_URL = _notifier.public_url
NOTIFIER_REPORT_KEEP_HOURS = _notifier.report_keep_hours
NOTIFIER_BEAT_LOCK_SECONDS = _notifier.beat_lock_seconds
NOTIFIER_BEAT_STALE_SECONDS = _notifier.beat_stale_seconds
NOTIFIER_DISPATCHER_LOCK_SECONDS = _notifier.dispatcher_lock_seconds
NOTIFIER_HEARTBEAT_GRACE_SECONDS = _notifier.heartbeat_grace_seconds
NOTIFIER_PHONE_REFRESH_HOUR = _notifier.phone_refresh_hour
NOTIFIER_DELIVERY_CHUNK_SIZE = _notifier.delivery_chunk_size
NOTIFIER_DELIVERY_LEASE_SECONDS = _notifier.delivery_lease_seconds
NOTIFIER_DELIVERY_FLUSH_SECONDS = _notifier.delivery_flush_seconds
NOTIFIER_DELIVERY_MARKS = _notifier.delivery_marks
NOTIFIER_RETRY_BASE_SECONDS = _notifier.retry_base_seconds
NOTIFIER_SWEEP_INTERVAL_SECONDS = _notifier.sweep_interval_seconds
NOTIFIER_SWEEP_GRACE_SECONDS = _notifier.sweep_grace_seconds
NOTIFIER_SWEEP_LIMIT = _notifier.sweep_limit
NOTIFIER_SWEEP_LOCK_SECONDS = _notifier.sweep_lock_seconds
NOTIFIER_WORKER_CONN_MAX_AGE = _notifier.worker_conn_max_age
NOTIFIER_LOG_LEVEL = _notifier.log_level
NOTIFIER_DB_SCHEMA = _notifier.db_schema
NOTIFIER_VAR_DIR = _notifier.var_dir
NOTIFIER_PROVIDER_CLASSES = list(_notifier.provider_classes)


# Seed-compatible: an active entry for the dispatcher task here overrides the trigger_* hours (SPEC §8).
# From the environment as a JSON list, e.g. [{"task": "policy_notification.tasks.send_notification_messages",
# "hour": "8-16"}]; notifier.schedule validates the entries at start-up (notifier.apps).
def _scheduled_tasks() -> list[dict[str, object]]:
    text = os.environ.get("SCHEDULED_TASK", "").strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"SCHEDULED_TASK: not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, list):
        raise ImproperlyConfigured("SCHEDULED_TASK: must be a JSON list of entries")
    return value


SCHEDULED_TASK = _scheduled_tasks()

# One console handler, on the root logger: every logger reaches it once by propagation. A Celery worker replaces
# the root's handlers with its own (worker_hijack_root_logger), so there too each line is printed once; a second
# handler on `notifier` itself would print its lines twice in a worker. django.request logs every unexpected 500
# with its traceback; celery.app.trace every failed task with its traceback.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Times in TIME_ZONE with their offset, like the JSON answers (health); the notifier's lines are written by its
    # own handler only (no propagation to a root handler that celery or gunicorn also set up: each line once).
    "formatters": {
        "plain": {"()": "project.log_format.ZonedFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Its own handler and no propagation: each notifier line once, whatever a worker's root logger has.
        "notifier": {
            "handlers": ["console"],
            "level": _notifier.log_level,
            "propagate": False,
        },
        "django.request": {"level": "ERROR"},
        "celery.app.trace": {"level": "INFO"},
    },
}
