"""Test data for detection: policy fields that make a policy due for a type on a given day, and bulk schemes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from notifier.models import Family, FamilyNotification, FamilyPhone, Insuree, Policy, Product
from notifier.types import NOTIFICATION_TYPES

ALL_TYPES_ON = dict.fromkeys(NOTIFICATION_TYPES, True)
DAY = dt.timedelta(days=1)


def at(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    """An aware moment on `day` in the scheme's time zone."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def due_fields(notification_type: str, event: dt.date, **overrides: Any) -> dict[str, Any]:
    """Policy fields whose event date for `notification_type` is `event` (defaults: reminder days 5)."""
    if notification_type in ("activation_of_policy", "renewal_of_policy"):
        start = event + 5 * DAY  # cover starts later, so starting_of_policy does not supersede activation
        fields: dict[str, Any] = {
            "stage": Policy.Stage.NEW if notification_type == "activation_of_policy" else Policy.Stage.RENEWAL,
            "start_date": start,
            "effective_date": start,
            "expiry_date": start + 364 * DAY,
            "validity_from": at(event),
        }
    elif notification_type == "starting_of_policy":
        fields = {
            "start_date": event,
            "effective_date": event,
            "expiry_date": event + 364 * DAY,
            "validity_from": at(event - 12 * DAY),
        }
    else:
        expiry = {
            "need_for_renewal": event + 5 * DAY,
            "expiration_of_policy": event,
            "reminder_after_expiration": event - 5 * DAY,
        }[notification_type]
        start = expiry - 364 * DAY
        fields = {
            "start_date": start,
            "effective_date": start,
            "expiry_date": expiry,
            "validity_from": at(start - 2 * DAY),
        }
        if notification_type == "reminder_after_expiration":
            fields["status"] = Policy.Status.EXPIRED
    fields.update(overrides)
    return fields


def bulk_families(count: int, *, approved: bool = True, location: Any = None) -> list[Family]:
    """`count` current families, each with a head holding a valid phone, consent and FamilyPhone, in 4 queries."""
    families = Family.objects.bulk_create([Family(location=location) for _ in range(count)])
    heads = Insuree.objects.bulk_create(
        [
            Insuree(
                chf_id=f"B{family.pk:010d}",
                last_name=f"Bulk{family.pk}",
                other_names="Amani",
                family=family,
                head=True,
                phone=f"07{family.pk % 10**8:08d}",
            )
            for family in families
        ]
    )
    FamilyPhone.objects.bulk_create(
        [
            FamilyPhone(family=family, insuree=head, phone=f"+2557{family.pk % 10**8:08d}")
            for family, head in zip(families, heads, strict=True)
        ]
    )
    FamilyNotification.objects.bulk_create(
        [FamilyNotification(family=family, approval_of_sms=approved, language_of_sms="sw") for family in families]
    )
    return families


def bulk_policies(families: list[Family], product: Product, notification_type: str, event: dt.date) -> list[Policy]:
    today = timezone.localdate()
    return Policy.objects.bulk_create(
        [
            Policy(
                family=family,
                product=product,
                **{
                    "status": Policy.Status.ACTIVE,
                    "enroll_date": today - 400 * DAY,
                    **due_fields(notification_type, event),
                },
            )
            for family in families
        ]
    )
