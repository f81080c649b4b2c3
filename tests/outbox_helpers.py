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


def bare_outboxes(count: int, text: str = "Your policy expires today.") -> list[Outbox]:
    """`count` rows like bare_outbox's, one policy each, recipients +255712000000, +255712000001, …"""
    family = Family.objects.create()
    today = timezone.localdate()
    product = Product.objects.create(code="P1", name="Cover")
    rows = []
    for index in range(count):
        policy = Policy.objects.create(family=family, product=product, enroll_date=today, start_date=today)
        rows.append(
            Outbox.objects.create(
                policy=policy,
                family=family,
                notification_type="expiration_of_policy",
                event_date=today,
                recipient=f"+255712{index:06d}",
                language="fr",
                text=text,
            )
        )
    return rows
