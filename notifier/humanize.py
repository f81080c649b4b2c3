"""Words for people: notification types, outcomes, and the plain text of an error a gateway answered in HTML."""

from __future__ import annotations

import html
import re

FAILURE_WORDS = {
    "TransientError": "temporary failure (tried again later)",
    "PermanentError": "refused by the gateway",
    "UnknownOutcomeError": "outcome unknown (the gateway may have sent it)",
}
_TAG = re.compile(r"<[a-zA-Z!/?][^>]*>")
_HIDDEN = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def plain_excerpt(text: str | None, limit: int = 200) -> str:
    """One line of plain text: an HTML body (a proxy's error page) loses its tags, scripts and entities."""
    if not text:
        return ""
    if _TAG.search(text):
        text = _TAG.sub(" ", _HIDDEN.sub(" ", text))  # a space per tag: block elements do not run together
    text = " ".join(html.unescape(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
