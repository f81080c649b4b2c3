"""Issue 14.1: every eGA config that works with the upstream policy_notification module works here unchanged."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine

from notifier.config import ConfigError, parse_config
from notifier.models import ProviderAccount
from notifier.providers import account_provider, check_provider_config, seed_provider_accounts
from notifier.providers.base import ProviderConfigError
from notifier.providers.ega import EGAConfig, EGASMSGateway
from tests.factories import ega_config
from tests.gateway import GatewayServer

VECTOR_TIME = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)  # 11:00 in UTC+3, SPEC §7's first test vector
VECTOR_1_HASH = "4hSgcyoPkt91qecuCwmVKIomOU/+Dnrct/xOHWMiVtc="


def upstream_config(gate_url: str) -> dict[str, Any]:
    """The upstream module's config as a deployment writes it: its eGA gateway class answers only to
    "HashMessage1", "UserId" and "RequestType" in HeaderValues."""
    return {
        "providers": {
            "eGASMSGateway": ega_config(
                gate_url,
                HeaderKeys="X-Auth-Request-Hash,X-Auth-Request-Id,X-Auth-Request-Type",
                HeaderValues="HashMessage1,UserId,RequestType",
            ),
            "TextNotificationProvider": {"DestinationFolder": "sent_notification"},
        },
        "eligibleNotificationTypes": {
            "activation_of_policy": True,
            "starting_of_policy": False,
            "need_for_renewal": True,
            "expiration_of_policy": True,
            "reminder_after_expiration": False,
            "renewal_of_policy": True,
        },
        "family_policy_notification_report_perms": ["131224"],
        "trigger_time_interval_hours": 4,
        "trigger_first_call_hour": 8,
        "trigger_last_call_hour": 20,
        "reminder_before_expiry_days": 14,
        "reminder_after_expiry_days": 5,
        "policy_activation_relevance_maximum_days_timedelta": 3,
        "policy_renewal_relevance_maximum_days_timedelta": 7,
    }


def test_an_upstream_config_starts_here_unchanged() -> None:
    raw = upstream_config("https://smsgw.example.go.tz")
    config = parse_config(raw)
    check_provider_config(config.providers)  # what start-up runs: no ConfigError
    assert config.reminder_before_expiry_days == 14
    assert config.max_delay("activation_of_policy") == 3
    assert config.max_delay("renewal_of_policy") == 7
    assert config.max_delay("need_for_renewal") == 13


def test_an_explicit_max_delay_wins_over_the_upstream_alias() -> None:
    raw = {"policy_activation_relevance_maximum_days_timedelta": 3, "max_delay_days": {"activation_of_policy": 1}}
    assert parse_config(raw).max_delay("activation_of_policy") == 1


def test_a_bad_upstream_alias_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="'policy_renewal_relevance_maximum_days_timedelta'"):
        parse_config({"policy_renewal_relevance_maximum_days_timedelta": "7"})


@pytest.mark.django_db
def test_an_upstream_eGA_config_sends_the_three_auth_headers(settings: Any, gateway: GatewayServer) -> None:
    settings.NOTIFIER = upstream_config(gateway.url)
    [ega, _text] = seed_provider_accounts()
    assert ega.provider == "eGASMSGateway"
    assert ProviderAccount.objects.get(name="eGASMSGateway").config["HeaderValues"] == "HashMessage1,UserId,RequestType"
    with time_machine.travel(VECTOR_TIME, tick=False):
        account_provider(ega).send("+255712345678", "Your policy expires on 2026-12-31.", "outbox-1")
    [request] = gateway.received
    assert request.path == "/api/sms/v1/send"
    assert request.header("X-Auth-Request-Hash") == VECTOR_1_HASH
    assert request.header("X-Auth-Request-Id") == "user-7"
    assert request.header("X-Auth-Request-Type") == "api"
    assert "s3cr3t-key" not in request.body.decode() + repr(request.headers)


@pytest.mark.parametrize(
    "values",
    ["HashMessage1,UserId,RequestType", "hashmessage1,userid,requesttype", "PrivateKey,UserId,RequestType"],
)
def test_every_header_value_name_upstream_or_the_seed_uses_means_the_hash(values: str) -> None:
    config = EGASMSGateway.parse_config({"HeaderValues": values})
    assert isinstance(config, EGAConfig)
    assert config.header_sources() == [
        ("X-Auth-Request-Hash", "hash"),
        ("X-Auth-Request-Id", "user_id"),
        ("X-Auth-Request-Type", "request_type"),
    ]


def test_an_unknown_header_value_is_refused_listing_the_names_upstream_accepts() -> None:
    expected = r"HeaderValues: unknown value 'HashMessage2' \(expected HashMessage1"
    with pytest.raises(ProviderConfigError, match=expected):
        EGASMSGateway.parse_config({"HeaderValues": "HashMessage2,UserId,RequestType"})


@pytest.mark.parametrize(
    ("gate_url", "resource", "url"),
    [
        ("https://gw.example/api", "/sms/send", "https://gw.example/api/sms/send"),
        ("https://gw.example/api/", "/sms/send", "https://gw.example/api/sms/send"),
        ("https://gw.example/api/sms/send", "", "https://gw.example/api/sms/send"),
    ],
)
def test_it_joins_gate_url_and_resource_as_upstream_does(gate_url: str, resource: str, url: str) -> None:
    config = EGASMSGateway.parse_config({"GateUrl": gate_url, "SmsResource": resource})
    assert isinstance(config, EGAConfig)
    assert config.url == url
