"""The notifier's receivers of the family service's signals: consent rows and derived phones follow families."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from notifier import services, signals
from notifier.consent_log import Source, consent_source
from notifier.models import Family, Insuree
from notifier.phones import refresh_family_phones


def _consent_payload(contributions: dict[str, Any]) -> Any:
    return contributions.get(services.CONTRIBUTION_KEY)


@receiver(signals.family_created)
def on_family_created(sender: Any, family: Family, contributions: dict[str, Any], **kwargs: Any) -> None:
    with consent_source(Source.FAMILY_SERVICE):
        services.create_family_notification_policy(family.uuid, _consent_payload(contributions))
    refresh_family_phones([family.id])


@receiver(signals.family_updated)
def on_family_updated(sender: Any, family: Family, contributions: dict[str, Any], **kwargs: Any) -> None:
    payload = _consent_payload(contributions)
    if payload is not None:
        with consent_source(Source.FAMILY_SERVICE):
            services.update_family_notification_policy(family.uuid, payload)
    refresh_family_phones([family.id])


@receiver(signals.family_deleted)
def on_family_deleted(sender: Any, family: Family, contributions: dict[str, Any], **kwargs: Any) -> None:
    with consent_source(Source.FAMILY_SERVICE):
        services.delete_family_notification_policy(family.uuid, _consent_payload(contributions))
    refresh_family_phones([family.id])


@receiver(signals.insuree_changed)
def on_insuree_changed(sender: Any, insuree: Insuree, **kwargs: Any) -> None:
    if insuree.family_id is not None:
        refresh_family_phones([insuree.family_id])
