"""The notification types (SPEC §4): one entry each, read by config, detection, forecast, demo, admin and tests.

An entry says what the type is, not how to query it: detection turns `event` and `candidates` into SQL, the config
turns `default_max_delay_days` into its `max_delay_days` key. Adding a type is one entry here and a migration with
one template per language (like 0003_templates; `makemigrations` adds the new choice). No Django import: the config
reads this while settings load.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Event(enum.Enum):
    """Which date of the policy the type's event date is."""

    BECAME_ACTIVE = "became_active"  # the day (TIME_ZONE) of the current row's ValidityFrom
    EFFECTIVE = "effective"  # EffectiveDate
    EXPIRY = "expiry"  # ExpiryDate + expiry_offset days


class Candidates(enum.Enum):
    """Which current policies (of current families) are candidates of the type."""

    CHANGED_TO_ACTIVE = "changed_to_active"  # active, of `stage`, and the version before it was not active
    ACTIVE = "active"  # status active
    NOT_RENEWED = "not_renewed"  # active or expired, and no later policy of the family for the product (SPEC §4)


class Amount(enum.Enum):
    """What the template's {AmountToBePaid} is for the type."""

    NONE = "none"  # no meaning: the placeholder is refused in its templates
    RENEWAL_PRICE = "renewal_price"  # what renewing now costs for the family's current members
    POLICY_VALUE = "policy_value"  # the policy's own PolicyValue as entered (a renewal)


@dataclass(frozen=True)
class NotificationType:
    slug: str  # the seed's config name, the outbox's notification_type
    label: str  # for people (dashboard, admin)
    short_name: str  # a column heading (forecast_notifications)
    event: Event
    candidates: Candidates
    # The due window's default length in days (config `max_delay_days`); None: `reminder_before_expiry_days` - 1.
    default_max_delay_days: int | None
    amount: Amount = Amount.NONE
    stage: str = ""  # CHANGED_TO_ACTIVE: the policy stage (openIMIS PolicyStage: N new, R renewal)
    # EXPIRY: event date = ExpiryDate + sign x the config key's days (no key: ExpiryDate itself).
    expiry_offset_key: str = ""
    expiry_offset_sign: int = 0
    # When that type is enabled and its event date for the same policy is this type's event date, this type is
    # skipped with `superseded_reason` (SPEC §4: activation and starting on one day send starting only).
    superseded_by: str = ""
    superseded_reason: str = ""


REGISTRY: tuple[NotificationType, ...] = (
    NotificationType(
        slug="activation_of_policy",
        label="Activation",
        short_name="activation",
        event=Event.BECAME_ACTIVE,
        candidates=Candidates.CHANGED_TO_ACTIVE,
        stage="N",
        default_max_delay_days=5,
        superseded_by="starting_of_policy",
        superseded_reason="superseded_by_starting",
    ),
    NotificationType(
        slug="starting_of_policy",
        label="Cover starts",
        short_name="starting",
        event=Event.EFFECTIVE,
        candidates=Candidates.ACTIVE,
        default_max_delay_days=2,
    ),
    NotificationType(
        slug="need_for_renewal",
        label="Renewal due",
        short_name="renewal_due",
        event=Event.EXPIRY,
        candidates=Candidates.NOT_RENEWED,
        expiry_offset_key="reminder_before_expiry_days",
        expiry_offset_sign=-1,
        default_max_delay_days=None,  # stops the day before expiry, when expiration takes over
        amount=Amount.RENEWAL_PRICE,
    ),
    NotificationType(
        slug="expiration_of_policy",
        label="Expired today",
        short_name="expiration",
        event=Event.EXPIRY,
        candidates=Candidates.NOT_RENEWED,
        default_max_delay_days=2,
        amount=Amount.RENEWAL_PRICE,
    ),
    NotificationType(
        slug="reminder_after_expiration",
        label="Still not renewed",
        short_name="reminder",
        event=Event.EXPIRY,
        candidates=Candidates.NOT_RENEWED,
        expiry_offset_key="reminder_after_expiry_days",
        expiry_offset_sign=1,
        default_max_delay_days=5,
        amount=Amount.RENEWAL_PRICE,
    ),
    NotificationType(
        slug="renewal_of_policy",
        label="Renewed",
        short_name="renewal",
        event=Event.BECAME_ACTIVE,
        candidates=Candidates.CHANGED_TO_ACTIVE,
        stage="R",
        default_max_delay_days=5,
        amount=Amount.POLICY_VALUE,
    ),
)

BY_SLUG: dict[str, NotificationType] = {entry.slug: entry for entry in REGISTRY}
NOTIFICATION_TYPES: tuple[str, ...] = tuple(BY_SLUG)

assert len(BY_SLUG) == len(REGISTRY), "notification type slugs must be unique"
assert all(entry.superseded_by in BY_SLUG for entry in REGISTRY if entry.superseded_by)


def get_type(slug: str, field: str = "notification_type") -> NotificationType:
    """The registry entry; an unknown slug is a ValueError naming `field`."""
    try:
        return BY_SLUG[slug]
    except KeyError:
        raise ValueError(f"{field}: unknown type {slug!r}; one of {', '.join(NOTIFICATION_TYPES)}") from None


def known_types(slugs: Iterable[str], field: str = "types") -> list[str]:
    """`slugs` without repeats, in their order; any unknown one is a ValueError naming `field` and all of them."""
    selected = list(dict.fromkeys(slugs))
    unknown = [slug for slug in selected if slug not in BY_SLUG]
    if unknown:
        raise ValueError(f"{field}: unknown notification type(s) {', '.join(map(repr, unknown))}")
    return selected


def label(slug: str) -> str:
    entry = BY_SLUG.get(slug)
    return entry.label if entry else slug.replace("_", " ").capitalize()
