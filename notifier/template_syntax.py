"""The template language an operator writes: plain text with `{Placeholder}` fields from a fixed list, `{{` and `}}`
for literal braces. The parser here is the only thing that reads templates: no str.format (attribute/index
access), no template engine, so an operator's text can neither run code nor reach data beyond the fixed values.
Rendering fills them (`rendering.py`); the template model refuses a text that does not parse (`models`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from notifier.types import REGISTRY, Amount

PLACEHOLDERS: tuple[str, ...] = (
    "InsuranceID",
    "Name",
    "ProductCode",
    "ProductName",
    "EffectiveDate",
    "ExpiryDate",
    "AmountToBePaid",
)
# {AmountToBePaid} has a meaning only where a renewal is asked for or was entered.
AMOUNT_TYPES = frozenset(entry.slug for entry in REGISTRY if entry.amount is not Amount.NONE)


class TemplateError(ValueError):
    """A template text is not valid; the message names the placeholder or the position of the broken brace."""

    def __init__(self, message: str, placeholder: str | None = None) -> None:
        super().__init__(message)
        self.placeholder = placeholder


@dataclass(frozen=True)
class Placeholder:
    name: str


def parse_template(text: str) -> list[str | Placeholder]:
    """Split a template into literal text and placeholders; raise TemplateError on anything else."""
    return list(_parsed(text))


@functools.lru_cache(maxsize=512)
def _parsed(text: str) -> tuple[str | Placeholder, ...]:
    """parse_template's work, kept per text: delivery fills the same few templates for every message (an invalid
    text raises each time, as exceptions are not kept)."""
    pieces: list[str | Placeholder] = []
    literal: list[str] = []
    index, end = 0, len(text)
    while index < end:
        char = text[index]
        if char == "{" and text.startswith("{{", index):
            literal.append("{")
            index += 2
        elif char == "}" and text.startswith("}}", index):
            literal.append("}")
            index += 2
        elif char == "}":
            raise TemplateError(f"unmatched '}}' at position {index + 1} (write '}}}}' for a literal brace)")
        elif char == "{":
            close = text.find("}", index + 1)
            opening = text.find("{", index + 1)
            if close == -1 or (opening != -1 and opening < close):
                raise TemplateError(f"unclosed '{{' at position {index + 1} (write '{{{{' for a literal brace)")
            name = text[index + 1 : close]
            if name not in PLACEHOLDERS:
                raise TemplateError(
                    f"unknown placeholder {{{name}}}; allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
                    placeholder=name,
                )
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append(Placeholder(name))
            index = close + 1
        else:
            literal.append(char)
            index += 1
    if literal:
        pieces.append("".join(literal))
    return tuple(pieces)


def validate_template(text: str) -> None:
    """Raise TemplateError unless `text` is a usable template (parses, and is not blank)."""
    if not text.strip():
        raise TemplateError("the template is empty")
    parse_template(text)
