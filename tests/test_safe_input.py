"""notifier.safe_input.parse_uuid: the one UUID parser of the family service and the report."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from notifier.safe_input import parse_uuid

KEY = uuid.UUID("0b9f8a4e-7d2c-4c1e-9a57-3f6a1d2b8c90")


@pytest.mark.parametrize(
    "raw",
    [
        KEY,
        "0b9f8a4e-7d2c-4c1e-9a57-3f6a1d2b8c90",
        "0B9F8A4E-7D2C-4C1E-9A57-3F6A1D2B8C90",  # rows migrated from SQL Server are upper case
        "  0b9f8a4e-7d2c-4c1e-9a57-3f6a1d2b8c90\n",
        "0b9f8a4e7d2c4c1e9a573f6a1d2b8c90",
    ],
)
def test_it_reads_a_uuid_in_any_spelling(raw: Any) -> None:
    assert parse_uuid(raw) == KEY


@pytest.mark.parametrize(
    "raw", ["", "   ", "not-a-uuid", "0b9f8a4e-7d2c-4c1e-9a57", "\x00", None, 42, b"x" * 16, ["a"]]
)
def test_it_answers_none_for_anything_else(raw: Any) -> None:
    assert parse_uuid(raw) is None
