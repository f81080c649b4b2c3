from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notifier.config import ConfigError, load_from_environment, parse_config
from notifier.providers import check_provider_config

ROOT = Path(__file__).resolve().parent.parent


def test_it_fills_every_seed_key_with_its_default() -> None:
    config = parse_config({})
    assert config.trigger_first_call_hour == 8
    assert config.trigger_last_call_hour == 20
    assert config.trigger_time_interval_hours == 4
    assert config.reminder_before_expiry_days == 5
    assert config.reminder_after_expiry_days == 5
    assert config.family_policy_notification_report_perms == ["131224"]
    assert config.providers["eGASMSGateway"]["HeaderValues"] == "PrivateKey,UserId,RequestType"
    assert config.providers["TextNotificationProvider"]["DestinationFolder"] == "sent_notification"
    assert not any(config.eligibleNotificationTypes.values())


def test_it_derives_need_for_renewal_max_delay_from_reminder_days() -> None:
    assert parse_config({"reminder_before_expiry_days": 7}).max_delay("need_for_renewal") == 6
    assert parse_config({}).max_delay("activation_of_policy") == 5
    assert parse_config({"max_delay_days": {"starting_of_policy": 4}}).max_delay("starting_of_policy") == 4


def test_it_merges_a_partial_provider_override_with_the_defaults() -> None:
    config = parse_config({"providers": {"eGASMSGateway": {"PrivateKey": "k"}}})
    assert config.providers["eGASMSGateway"]["PrivateKey"] == "k"
    assert config.providers["eGASMSGateway"]["SmsResource"] == "/api/policy_notification/test_sms/"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"trigger_first_call_hours": 8}, "'trigger_first_call_hours': unknown key"),
        ({"trigger_first_call_hour": "8"}, "'trigger_first_call_hour'"),
        (
            {"eligibleNotificationTypes": {"activation_of_policy": "yes"}},
            "'eligibleNotificationTypes.activation_of_policy'",
        ),
        ({"eligibleNotificationTypes": {"renewal": True}}, "'eligibleNotificationTypes.renewal': unknown key"),
        ({"trigger_first_call_hour": 21}, "trigger_first_call_hour must not be after trigger_last_call_hour"),
        ({"reminder_before_expiry_days": 0}, "'reminder_before_expiry_days'"),
    ],
)
def test_it_refuses_bad_config_naming_the_key(raw: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(raw)
    assert named in str(excinfo.value)


def test_it_reads_overrides_from_the_environment(tmp_path: Path) -> None:
    assert load_from_environment({"NOTIFIER_CONFIG": '{"trigger_first_call_hour": 9}'}) == {
        "trigger_first_call_hour": 9
    }
    path = tmp_path / "notifier.json"
    path.write_text(json.dumps({"reminder_after_expiry_days": 3}))
    assert load_from_environment({"NOTIFIER_CONFIG_FILE": str(path)}) == {"reminder_after_expiry_days": 3}
    with pytest.raises(ConfigError, match="NOTIFIER_CONFIG: not valid JSON"):
        load_from_environment({"NOTIFIER_CONFIG": "{trigger"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_from_environment({"NOTIFIER_CONFIG_FILE": str(tmp_path / "missing.json")})


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"reminder_before_expiry_dayz": 5}, "'reminder_before_expiry_dayz': unknown key"),
        ({"providers": {"eGASMSGateway": {"Gateurl": "x"}}}, "'providers.eGASMSGateway'"),
        ({"providers": {"NoSuchGateway": {}}}, "'providers.NoSuchGateway': unknown provider"),
    ],
)
def test_it_stops_the_process_at_start_up_on_a_bad_key(raw: dict[str, object], named: str) -> None:
    env = {**os.environ, "NOTIFIER_CONFIG": json.dumps(raw)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert named in result.stderr


@pytest.mark.parametrize(
    ("providers", "named"),
    [
        ({"eGASMSGateway": {"Gateurl": "x"}}, "'providers.eGASMSGateway': Gateurl: unknown field"),
        ({"eGASMSGateway": {"HeaderKeys": "A,B"}}, "'providers.eGASMSGateway'"),
        ({"TextNotificationProvider": {"DestinationFolder": 3}}, "DestinationFolder"),
    ],
)
def test_it_validates_provider_entries_with_their_provider_class(providers: dict[str, object], named: str) -> None:
    merged = parse_config({"providers": providers}).providers
    with pytest.raises(ConfigError) as excinfo:
        check_provider_config(merged)
    assert named in str(excinfo.value)


def test_it_accepts_the_seed_provider_defaults() -> None:
    check_provider_config(parse_config({}).providers)
