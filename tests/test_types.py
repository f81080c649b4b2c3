"""notifier.types: the registry every per-type rule reads."""

from __future__ import annotations

import re

import pytest

from notifier import types
from notifier.config import ConfigError, parse_config
from notifier.types import NOTIFICATION_TYPES, get_type, known_types
from tests.factories import DEFAULT_MAX_DELAY


def test_the_registry_holds_the_six_seed_types_in_order() -> None:
    assert NOTIFICATION_TYPES == (
        "activation_of_policy",
        "starting_of_policy",
        "need_for_renewal",
        "expiration_of_policy",
        "reminder_after_expiration",
        "renewal_of_policy",
    )
    assert [entry.short_name for entry in types.REGISTRY] == [
        "activation",
        "starting",
        "renewal_due",
        "expiration",
        "reminder",
        "renewal",
    ]


def test_it_refuses_an_unknown_type_naming_the_field() -> None:
    assert get_type("need_for_renewal").label == "Renewal due"
    with pytest.raises(ValueError, match="notification_type: unknown type 'birthday'"):
        get_type("birthday")
    assert known_types(["renewal_of_policy", "renewal_of_policy"]) == ["renewal_of_policy"]
    with pytest.raises(ValueError, match=re.escape("types: unknown notification type(s) 'birthday', 'x'")):
        known_types(["birthday", "starting_of_policy", "x"])


def test_the_config_has_one_key_per_type_and_its_default_delay() -> None:
    config = parse_config({"eligibleNotificationTypes": {"renewal_of_policy": True}})
    assert list(config.eligibleNotificationTypes) == list(NOTIFICATION_TYPES)
    assert config.enabled_types() == ["renewal_of_policy"]
    assert {name: config.max_delay(name) for name in NOTIFICATION_TYPES} == DEFAULT_MAX_DELAY
    assert [config.expiry_offset(name) for name in ("need_for_renewal", "expiration_of_policy")] == [-5, 0]
    with pytest.raises(ConfigError, match=re.escape("'max_delay_days.birthday': unknown key")):
        parse_config({"max_delay_days": {"birthday": 1}})
    with pytest.raises(ConfigError, match="'max_delay_days': starting_of_policy: must be 0 or more"):
        parse_config({"max_delay_days": {"starting_of_policy": -1}})


def test_a_label_for_people_falls_back_to_the_slug() -> None:
    assert types.label("starting_of_policy") == "Cover starts"
    assert types.label("some_old_type") == "Some old type"
