"""How the HTTP providers read a gateway's answer to a send, one way for all: the statuses that mean "taken", the
JSON body, the fields that say "refused" or carry the gateway's message id; and the check every configured address
gets."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from notifier.providers.base import (
    HttpResponse,
    PermanentError,
    UnknownOutcomeError,
    body_excerpt,
    classify_status,
)
from notifier.providers.callbacks import lookup

Scalar = str | int | bool


def http_url_problem(url: str) -> str | None:
    """Why `url` cannot be called (scheme other than http/https, no host, spaces or control characters), or None."""
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"not a usable URL ({exc})"
    if parts.scheme not in {"http", "https"}:
        return "must start with http:// or https://"
    if not parts.hostname:
        return "must name a host, e.g. https://sms.example.org"
    return None


def check_url(value: str, field: str) -> None:
    """For a config validator: ValueError naming `field` when no request may go to this URL."""
    problem = http_url_problem(value)
    if problem is not None:
        raise ValueError(f"{field}: {problem}")


def same_value(found: Any, expected: Scalar) -> bool:
    """A JSON value against a configured one: 101 and "101" are the same answer."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return found is expected
    return str(found) == str(expected)


def json_answer(response: HttpResponse, *, required: bool, empty_is_none: bool = True) -> Any:
    """The answer's JSON body (None for an empty body when `empty_is_none`). A body that is not JSON is None, or,
    when the caller must read it (`required`), an UnknownOutcomeError: the gateway may have taken the message."""
    if empty_is_none and not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        if required:
            raise UnknownOutcomeError(
                f"HTTP {response.status_code} without a JSON body: {body_excerpt(response)}",
                http_status=response.status_code,
            ) from None
        return None


def read_answer(
    response: HttpResponse,
    reference: str,
    *,
    success_status: Collection[int],
    json_required: bool,
    error_field: str = "",
    success_field: str = "",
    success_values: Collection[Scalar] = (),
    reason_field: str = "",
    reference_field: str = "",
) -> str:
    """The gateway's message id (or our `reference` when it gives none), or the error kind its answer means: a status
    outside `success_status` is unknown; a set `error_field`, or a `success_field` that is false or not one of
    `success_values`, is a permanent refusal."""
    classify_status(response)
    if response.status_code not in success_status:
        raise UnknownOutcomeError(f"unexpected HTTP {response.status_code}", http_status=response.status_code)
    answer = json_answer(response, required=json_required)
    if error_field and lookup(answer, error_field):
        raise PermanentError(f"gateway error: {body_excerpt(response)}", http_status=response.status_code)
    if success_field:
        outcome = lookup(answer, success_field)
        ok = any(same_value(outcome, found) for found in success_values) if success_values else bool(outcome)
        if not ok:
            reason = lookup(answer, reason_field) if reason_field else None
            detail = f"{success_field}={outcome!r}" + (f", {reason}" if reason else "")
            raise PermanentError(f"gateway refused ({detail})", http_status=response.status_code)
    if reference_field:
        found = lookup(answer, reference_field)
        if found not in (None, ""):
            return str(found)
    return reference
