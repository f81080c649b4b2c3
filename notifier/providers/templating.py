"""Placeholders in a provider's configured request (URL, query, headers, body): found and checked on save, filled in
the parsed structure on send, so message text never breaks the JSON or the form around it."""

from __future__ import annotations

import string
from collections.abc import Mapping, Set
from typing import Any


def placeholders(value: Any, where: str) -> list[tuple[str, str]]:
    """(location, placeholder) for every placeholder in the string leaves of `value`."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        for _literal, name, spec, conversion in parsed:
            if name is None:
                continue
            if spec or conversion:
                raise ValueError(f"{where}: placeholder {{{name}}} may not carry a format or conversion")
            found.append((where, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(placeholders(item, f"{where}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(placeholders(item, f"{where}[{index}]"))
    return found


def check_placeholders(value: Any, where: str, known: Set[str]) -> None:
    """A ValueError naming the location of the first placeholder that is not one of `known`."""
    for location, name in placeholders(value, where):
        if name not in known:
            raise ValueError(f"{location}: unknown placeholder {{{name}}} (known: {', '.join(sorted(known))})")


def fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {key: fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, values) for item in value]
    return value
