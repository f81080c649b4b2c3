"""Outbox rows for delivery tests."""

from __future__ import annotations

from django.utils import timezone

from notifier.models import Family, Outbox, Policy, Product


def bare_outbox(text: str) -> Outbox:
    """An outbox row that needs no shipped data (languages, templates): transactional tests run after a flush."""
    family = Family.objects.create()
    today = timezone.localdate()
    product = Product.objects.create(code="P1", name="Cover")
    policy = Policy.objects.create(family=family, product=product, enroll_date=today, start_date=today)
    return Outbox.objects.create(
        policy=policy,
        family=family,
        notification_type="expiration_of_policy",
        event_date=today,
        recipient="+255712345678",
        language="fr",
        text=text,
    )
