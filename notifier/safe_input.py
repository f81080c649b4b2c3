"""Input PostgreSQL (or Python) would refuse late, refused early with the field named.

PostgreSQL refuses the NUL character in text and in jsonb (`\\u0000`), and text that is not valid UTF-8 (a lone
surrogate such as `\\ud800` from a JSON escape cannot even be encoded); a value longer than its column raises
DataError; JSON nested 100,000 deep raises RecursionError in the parser. Each of those used to surface as a 500.
The functions here return a message or raise ValidationError({field: message}) before anything is written.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse

# Deeper than anything a provider config, a consent payload or an SMS gateway body needs.
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1_000_000


def text_problem(value: str, max_length: int | None = None) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\x00), which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a character that is not valid Unicode at position {exc.start}"
    if max_length is not None and len(value) > max_length:
        return f"at most {max_length} characters, got {len(value)}"
    return None


def check_text(field: str, value: Any, max_length: int | None = None) -> None:
    """ValidationError({field: ...}) unless `value` is None or a storable str (of at most max_length)."""
    if value is None or not isinstance(value, str):
        return
    problem = text_problem(value, max_length)
    if problem is not None:
        raise ValidationError({field: problem})


def parse_uuid(value: Any) -> uuid.UUID | None:
    """A UUID from user input (a UUID, or its text in any case with blanks around it); None for anything else."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """(where, why) for the first part of a parsed JSON value that cannot be stored as jsonb, or None.

    Iterative, so a deep value cannot exhaust the stack here either.
    """
    pending: list[tuple[Any, str, int]] = [(value, "", 0)]
    while pending:
        item, where, depth = pending.pop()
        if depth > max_depth:
            return where or "(top)", f"nested deeper than {max_depth} levels"
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return where or "(top)", problem
        elif isinstance(item, Mapping):
            for key, child in item.items():
                problem = text_problem(str(key))
                path = f"{where}.{key}" if where else str(key)
                if problem is not None:
                    return where or "(top)", f"key {problem}"
                pending.append((child, path, depth + 1))
        elif isinstance(item, list | tuple):
            for index, child in enumerate(item):
                pending.append((child, f"{where}[{index}]", depth + 1))
    return None


def parse_json(raw: bytes | str, field: str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse JSON text, refusing (ValidationError naming `field`) what is too big, not UTF-8, not JSON, too deep,
    or holding text PostgreSQL cannot store."""
    if isinstance(raw, bytes):
        if len(raw) > max_bytes:
            raise ValidationError({field: f"at most {max_bytes} bytes of JSON, got {len(raw)}"})
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError({field: f"not valid UTF-8 (byte {exc.start})"}) from None
    elif len(raw) > max_bytes:
        raise ValidationError({field: f"at most {max_bytes} characters of JSON, got {len(raw)}"})
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValidationError({field: f"nested deeper than {MAX_JSON_DEPTH} levels"}) from None
    except json.JSONDecodeError as exc:
        raise ValidationError({field: f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"}) from None
    found = json_problem(value)
    if found is not None:
        where, why = found
        raise ValidationError({field: f"{where}: {why}"})
    return value


def first_message(error: ValidationError) -> tuple[str, str]:
    """(field, message) of a ValidationError raised with a dict, for a 400 body."""
    if hasattr(error, "error_dict"):
        field, errors = next(iter(error.error_dict.items()))
        return field, "; ".join(str(message) for item in errors for message in item.messages)
    return "", "; ".join(error.messages)


class RefuseUnstorableQueryMiddleware:
    """A 400 naming the parameter for a NUL (or text that is not valid Unicode) in the URL path or a query
    parameter, before any view can hand it to PostgreSQL: admin filters and lookups (`?status=%00`, an object id
    `%00` in the path) would otherwise end in a DataError, a 500. Form bodies are left to the forms, which refuse
    NUL naming the field; JSON bodies to their views (parse_json)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = text_problem(request.path)
        if problem is not None:
            return self._refuse("path", problem)
        for name, values in request.GET.lists():
            problem = text_problem(name)
            if problem is not None:
                return self._refuse("query", f"a parameter name {problem}")
            for value in values:
                problem = text_problem(value)
                if problem is not None:
                    return self._refuse(name, problem)
        return self.get_response(request)

    @staticmethod
    def _refuse(field: str, problem: str) -> JsonResponse:
        shown = field if len(field) <= 60 else field[:57] + "..."
        return JsonResponse({"error": f"{shown}: {problem}", "field": shown, "param": shown}, status=400)
