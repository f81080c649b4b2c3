"""What a gateway tells us after the fact: delivery receipts and inbound messages, in one shape for every provider.

A provider class parses its gateway's callback request into these; `notifier.receipts` and `notifier.inbound` act
on them. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# delivered / undelivered are final; accepted means the gateway took the message (an `unknown` row was sent);
# pending is an intermediate report that changes nothing but is noted.
ReceiptOutcome = Literal["delivered", "undelivered", "accepted", "pending"]
CallbackKind = Literal["receipt", "inbound"]


class CallbackError(ValueError):
    """A callback request we cannot read; the message names the field."""


@dataclass(frozen=True)
class CallbackRequest:
    """The parts of an HTTP callback a provider needs, independent of Django."""

    url: str  # as the gateway called it: scheme, host, path and query
    headers: Mapping[str, str]
    form: Mapping[str, str] = field(default_factory=dict)  # form fields of a POST, or the query of a GET
    json: Any = None  # the parsed JSON body, when the body was JSON
    query: Mapping[str, str] = field(default_factory=dict)  # the URL's query parameters (our `ref`)

    def header(self, name: str) -> str:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return ""


@dataclass(frozen=True)
class Receipt:
    provider_id: str  # the gateway's message id (what send() returned), or ""
    outcome: ReceiptOutcome
    status: str  # the gateway's own status word
    reason: str = ""  # the gateway's failure reason / error code, if any
    reference: str = ""  # our outbox reference ("outbox-<id>") when the gateway echoes it back
    recipient: str = ""  # the number the receipt is about, when given


@dataclass(frozen=True)
class InboundMessage:
    sender: str  # the phone number that wrote to us, as the gateway gives it
    text: str
    provider_id: str = ""


@dataclass(frozen=True)
class CallbackAnswer:
    """What to answer a gateway that expects its own format back (Twilio reads TwiML) instead of our JSON summary."""

    body: str
    content_type: str


def receipt_outcome(
    status: str, *, delivered: Collection[str], undelivered: Collection[str], accepted: Collection[str] = ()
) -> ReceiptOutcome:
    """A gateway's status word in our terms; a word in none of the gateway's lists is an intermediate report."""
    if status in delivered:
        return "delivered"
    if status in undelivered:
        return "undelivered"
    if status in accepted:
        return "accepted"
    return "pending"


def lookup(answer: Any, path: str) -> Any:
    """A value inside parsed JSON by a dotted path; list items by index (`results[0].status` or `results.0.status`).
    None when any step is missing."""
    if not path:
        return None
    current = answer
    for part in path.replace("[", ".").replace("]", "").split("."):
        if part == "":
            continue
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current
