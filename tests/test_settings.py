"""notifier.settings: every NOTIFIER_* value and the NOTIFIER dict in one typed object, validated once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from notifier.config import ConfigError
from notifier.settings import RETIRED, NotifierSettings, from_environment, get_settings, setting_name
from project import settings as project_settings

ROOT = Path(__file__).resolve().parent.parent
FIELDS = list(NotifierSettings.model_fields)


def test_it_reads_every_value_from_the_environment_as_its_type() -> None:
    loaded = from_environment(
        {
            "NOTIFIER_DELIVERY_CHUNK_SIZE": "4",
            "NOTIFIER_DELIVERY_LEASE_SECONDS": "1.5",
            "NOTIFIER_ENABLE_TEST_SMS": "1",
            "NOTIFIER_SWEEP_LIMIT": " 700 ",
            "NOTIFIER_PUBLIC_URL": "https://sms.example.org/",
            "NOTIFIER_LOG_LEVEL": "debug",
            "NOTIFIER_PROVIDER_CLASSES": "notifier.providers.text.TextNotificationProvider, a.b.C",
            "NOTIFIER_CONFIG": '{"reminder_after_expiry_days": 3}',
        }
    )
    assert loaded.delivery_chunk_size == 4
    assert loaded.delivery_lease_seconds == 1.5
    assert loaded.enable_test_sms is True
    assert loaded.sweep_limit == 700
    assert loaded.public_url == "https://sms.example.org"
    assert loaded.log_level == "DEBUG"
    assert loaded.provider_classes == ("notifier.providers.text.TextNotificationProvider", "a.b.C")
    assert loaded.config.reminder_after_expiry_days == 3
    assert loaded.sweep_grace_seconds == 600  # unset: the default


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"NOTIFIER_DELIVERY_CHUNK_SIZE": "0"}, "NOTIFIER_DELIVERY_CHUNK_SIZE: Input should be greater than"),
        ({"NOTIFIER_SWEEP_LIMIT": "lots"}, "NOTIFIER_SWEEP_LIMIT: Input should be a valid integer"),
        ({"NOTIFIER_ENABLE_TEST_SMS": "maybe"}, "NOTIFIER_ENABLE_TEST_SMS: Input should be a valid boolean"),
        ({"NOTIFIER_DELIVERY_FLUSH_SECONDS": "-1"}, "NOTIFIER_DELIVERY_FLUSH_SECONDS"),
        ({"NOTIFIER_LOG_LEVEL": "loud"}, "NOTIFIER_LOG_LEVEL: Value error, one of DEBUG"),
        ({"NOTIFIER_DEFAULT_REGION": "Tanzania"}, "NOTIFIER_DEFAULT_REGION"),
        ({"NOTIFIER_PROVIDER_CLASSES": " , "}, "NOTIFIER_PROVIDER_CLASSES"),
        ({"NOTIFIER_SENDING_STALE_SECONDS": "900"}, "NOTIFIER_SENDING_STALE_SECONDS: no longer used"),
        ({"NOTIFIER_CONFIG": '{"max_attempts": 0}'}, "NOTIFIER config: 'max_attempts'"),
    ],
)
def test_it_refuses_a_bad_value_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        from_environment(environ)
    assert named in str(excinfo.value)


def test_it_stops_the_process_at_start_up_naming_the_variable() -> None:
    env = {**os.environ, "NOTIFIER_SWEEP_INTERVAL_SECONDS": "0"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "NOTIFIER_SWEEP_INTERVAL_SECONDS: Input should be greater than or equal to 1, got '0'" in result.stderr


def test_project_settings_publish_every_field_under_its_variable_name() -> None:
    published = {name for name in dir(project_settings) if name.startswith("NOTIFIER")}
    assert published == {"NOTIFIER", *(setting_name(field) for field in FIELDS)}


def test_it_sees_and_validates_a_django_override(settings: pytest.FixtureRequest) -> None:
    settings.NOTIFIER_DELIVERY_CHUNK_SIZE = 7  # type: ignore[attr-defined]
    assert get_settings().delivery_chunk_size == 7
    settings.NOTIFIER_DELIVERY_CHUNK_SIZE = "7"  # type: ignore[attr-defined]
    with pytest.raises(
        ConfigError, match=re.escape("settings.NOTIFIER_DELIVERY_CHUNK_SIZE: Input should be a valid integer")
    ):
        get_settings()


def test_the_readme_configuration_table_lists_exactly_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1]
    table = next(block for block in section.split("\n\n") if block.startswith("| variable"))
    listed = set(re.findall(r"`(NOTIFIER_[A-Z_]+)`", table))
    assert listed == {"NOTIFIER_CONFIG", "NOTIFIER_CONFIG_FILE", *RETIRED, *(setting_name(field) for field in FIELDS)}


def _start(**variables: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DJANGO_SECRET_KEY", "DJANGO_DEBUG"}}
    env.update(variables)
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "project.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_service_with_a_broker_refuses_to_start_without_its_own_secret_key() -> None:
    broker = "redis://127.0.0.1:1/0"  # never contacted: settings only
    refused = _start(CELERY_BROKER_URL=broker)
    assert refused.returncode != 0
    assert "DJANGO_SECRET_KEY: must be set" in refused.stderr
    assert _start(CELERY_BROKER_URL=broker, DJANGO_SECRET_KEY="k" * 50).stdout.strip() == "k" * 50
    assert _start(CELERY_BROKER_URL=broker, DJANGO_DEBUG="1").stdout.strip() == "embedded-mode-only-not-a-secret"
    assert _start(CELERY_BROKER_URL="").stdout.strip() == "embedded-mode-only-not-a-secret"  # embedded: the demo


def test_it_sees_each_way_django_settings_change() -> None:
    from django.conf import settings as django_settings
    from django.test import override_settings

    before = get_settings().delivery_chunk_size
    with override_settings(NOTIFIER_DELIVERY_CHUNK_SIZE=before + 3):
        assert get_settings().delivery_chunk_size == before + 3
        with override_settings(NOTIFIER_DELIVERY_CHUNK_SIZE=before + 4):
            assert get_settings().delivery_chunk_size == before + 4
        assert get_settings().delivery_chunk_size == before + 3
    assert get_settings().delivery_chunk_size == before
    try:
        django_settings.NOTIFIER_DELIVERY_CHUNK_SIZE = before + 5
        assert get_settings().delivery_chunk_size == before + 5
    finally:
        django_settings.NOTIFIER_DELIVERY_CHUNK_SIZE = before
    assert get_settings().delivery_chunk_size == before
