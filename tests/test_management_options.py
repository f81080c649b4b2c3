"""notifier.management.options: the argument parsing the management commands share."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from notifier.management.options import parse_base_url, parse_date


def test_it_reads_an_iso_day_and_leaves_a_missing_one_none() -> None:
    assert parse_date("2026-11-28") == dt.date(2026, 11, 28)
    assert parse_date(None) is None


def test_it_names_the_option_of_a_bad_day() -> None:
    with pytest.raises(CommandError, match="--from: expected YYYY-MM-DD, got '28/11/2026'"):
        parse_date("28/11/2026", "--from")


def test_it_keeps_a_base_url_without_its_trailing_slash() -> None:
    assert parse_base_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert parse_base_url("https://sms.example.org/notifier") == "https://sms.example.org/notifier"


@pytest.mark.parametrize("value", ["localhost:8000", "ftp://example.org", "http://", "/relative"])
def test_use_fake_gateway_refuses_a_base_url_without_scheme_and_host(value: str) -> None:
    with pytest.raises(CommandError, match=f"base_url: expected http://host:port, got '{value}'"):
        call_command("use_fake_gateway", value)
