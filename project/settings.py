"""Settings, all from the environment. Defaults give the embedded mode: SQLite under var/, in-process broker."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from notifier.config import ConfigError, load_from_environment, parse_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("NOTIFIER_VAR_DIR", BASE_DIR / "var"))


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


def _env_int(name: str, default: int) -> int:
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
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and _env_bool("NOTIFIER_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY: must be set in production")
    SECRET_KEY = "embedded-mode-only-not-a-secret"  # noqa: S105 - only for the embedded default
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
NOTIFIER_DB_SCHEMA = os.environ.get("NOTIFIER_DB_SCHEMA", "").strip() or "notifier"
OPENIMIS_DB_SCHEMA = os.environ.get("OPENIMIS_DB_SCHEMA", "").strip() or "public"
# tblFamilySMS's column spelling: auto (detected from information_schema), lower (familyid, ...) or camel ("FamilyID").
OPENIMIS_FAMILYSMS_COLUMNS = os.environ.get("OPENIMIS_FAMILYSMS_COLUMNS", "").strip().lower() or "auto"
if OPENIMIS_FAMILYSMS_COLUMNS not in ("auto", "lower", "camel"):
    raise ImproperlyConfigured(
        f"OPENIMIS_FAMILYSMS_COLUMNS: expected 'auto', 'lower' or 'camel', got {OPENIMIS_FAMILYSMS_COLUMNS!r}"
    )
if OPENIMIS_MODE == "attached":
    _IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    for _name, _value in (("NOTIFIER_DB_SCHEMA", NOTIFIER_DB_SCHEMA), ("OPENIMIS_DB_SCHEMA", OPENIMIS_DB_SCHEMA)):
        if not _IDENT.match(_value):
            raise ImproperlyConfigured(f"{_name}: not a plain PostgreSQL identifier (letters, digits, _): {_value!r}")
    if NOTIFIER_DB_SCHEMA == OPENIMIS_DB_SCHEMA:
        raise ImproperlyConfigured(
            f"NOTIFIER_DB_SCHEMA: must differ from OPENIMIS_DB_SCHEMA ({OPENIMIS_DB_SCHEMA!r}): openIMIS keeps its own "
            "django_migrations and auth tables there"
        )
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL: OPENIMIS_MODE=attached needs the openIMIS PostgreSQL database")
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c search_path={NOTIFIER_DB_SCHEMA}".strip()
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
# No broker configured means the embedded mode: tasks run in-process (always eager) on the memory transport.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or "memory://"
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("memory://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = EMBEDDED_BROKER
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "notifier.beat:LockedDatabaseScheduler"
# One beat at a time (notifier.beat): the lock's expiry, and how old the beat container's heartbeat may get.
NOTIFIER_BEAT_LOCK_SECONDS = _env_int("NOTIFIER_BEAT_LOCK_SECONDS", 60)
NOTIFIER_BEAT_STALE_SECONDS = _env_int("NOTIFIER_BEAT_STALE_SECONDS", 120)
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
# Database connections in Celery workers: kept across tasks for NOTIFIER_WORKER_CONN_MAX_AGE seconds (default 300;
# Celery's default is a new one per task; a DB_CONN_MAX_AGE of its own wins), checked with a cheap query before
# their first use in each task (CONN_HEALTH_CHECKS), so a restarted PostgreSQL costs one reconnection, not a failed
# task. Celery itself then only closes them every CELERY_DB_REUSE_MAX tasks (see project/celery.py).
NOTIFIER_WORKER_CONN_MAX_AGE = _env_int("NOTIFIER_WORKER_CONN_MAX_AGE", 300)
CELERY_DB_REUSE_MAX = 1000
CELERY_ACCEPT_CONTENT = ["json"]

# Redis for locks, circuit breakers and rate limits shared by all workers. Empty: in-process (embedded mode).
REDIS_URL = os.environ.get("REDIS_URL", "")

# --- The notifier ------------------------------------------------------------------------------------------
try:
    NOTIFIER = parse_config(load_from_environment()).model_dump()
except ConfigError as _exc:
    raise ImproperlyConfigured(
        f"{_exc} (fix it, or unset NOTIFIER_CONFIG / NOTIFIER_CONFIG_FILE for the defaults)"
    ) from None

NOTIFIER_DEFAULT_REGION = os.environ.get("NOTIFIER_DEFAULT_REGION", "TZ")
# Empty: the first openIMIS language (tblLanguages by SortOrder, NULL last, then code) is the default consent
# language, and rendering falls back to English.
NOTIFIER_DEFAULT_LANGUAGE = os.environ.get("NOTIFIER_DEFAULT_LANGUAGE", "").strip()
NOTIFIER_ENABLE_TEST_SMS = _env_bool("NOTIFIER_ENABLE_TEST_SMS", False)
# Prometheus scrapes /api/policy_notification/metrics/ with `Authorization: Bearer <this>` (staff sessions work too).
NOTIFIER_METRICS_TOKEN = os.environ.get("NOTIFIER_METRICS_TOKEN", "")
# Reports: a PDF, or a JSON/CSV of more families than this, is produced by a worker (notifier.report_files); its
# file is kept this many hours, then deleted by the hourly housekeeping task.
NOTIFIER_REPORT_ASYNC_FAMILIES = _env_int("NOTIFIER_REPORT_ASYNC_FAMILIES", 20_000)
NOTIFIER_REPORT_KEEP_HOURS = _env_int("NOTIFIER_REPORT_KEEP_HOURS", 24)
# Orchestration (notifier.tasks): outbox ids per delivery task; the sweeper's period (it also enqueues retries and
# deferred rows as they fall due) and how long a row fresh from detection waits for its own task before it counts as
# lost; the delivery lease (a run extends it while it works; once expired, the sweeper takes its rows back); the
# first retry's backoff base.
# The dispatcher lock's expiry: frees it if its holder died without releasing it.
NOTIFIER_DISPATCHER_LOCK_SECONDS = _env_int("NOTIFIER_DISPATCHER_LOCK_SECONDS", 1800)
NOTIFIER_DELIVERY_CHUNK_SIZE = _env_int("NOTIFIER_DELIVERY_CHUNK_SIZE", 50)
NOTIFIER_SWEEP_INTERVAL_SECONDS = _env_int("NOTIFIER_SWEEP_INTERVAL_SECONDS", 15)
NOTIFIER_SWEEP_GRACE_SECONDS = _env_int("NOTIFIER_SWEEP_GRACE_SECONDS", 600)
NOTIFIER_DELIVERY_LEASE_SECONDS = _env_int("NOTIFIER_DELIVERY_LEASE_SECONDS", 60)
NOTIFIER_RETRY_BASE_SECONDS = _env_int("NOTIFIER_RETRY_BASE_SECONDS", 60)
if "NOTIFIER_SENDING_STALE_SECONDS" in os.environ:
    raise ImproperlyConfigured(
        "NOTIFIER_SENDING_STALE_SECONDS: no longer used; delivery rows are leased, see NOTIFIER_DELIVERY_LEASE_SECONDS"
    )
# Hour(s) of the full refresh of the derived family phones ("2", "2,14"; validated by sync_schedule).
NOTIFIER_PHONE_REFRESH_HOUR = os.environ.get("NOTIFIER_PHONE_REFRESH_HOUR", "").strip() or "2"
# The health check calls the beat stale when no dispatcher run completed since the last scheduled hour plus this.
NOTIFIER_HEARTBEAT_GRACE_SECONDS = _env_int("NOTIFIER_HEARTBEAT_GRACE_SECONDS", 900)
# Provider plug-ins (SPEC §7): dotted paths; each class's slug must be unique.
NOTIFIER_PROVIDER_CLASSES = [
    "notifier.providers.ega.EGASMSGateway",
    "notifier.providers.text.TextNotificationProvider",
    "notifier.providers.http_json.HttpJsonProvider",
    "notifier.providers.http_generic.HttpProvider",
    "notifier.providers.http_generic.AfricasTalkingProvider",
    "notifier.providers.http_generic.TwilioProvider",
    "notifier.providers.http_generic.InfobipProvider",
]

# The service's address as gateways reach it (e.g. https://sms.scheme.example), used to give Twilio and Infobip a
# per-message receipt URL and to check Twilio's signature behind a proxy. Empty: the request's own URL.
NOTIFIER_PUBLIC_URL = os.environ.get("NOTIFIER_PUBLIC_URL", "").rstrip("/")


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
            "level": os.environ.get("NOTIFIER_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
        "django.request": {"level": "ERROR"},
        "celery.app.trace": {"level": "INFO"},
    },
}
