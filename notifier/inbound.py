"""Messages families send us. A STOP (any of `stop_keywords`, any case, surrounding spaces ignored) withdraws the
consent of every current family texted on that number, through the consent service, with the SMS as provenance
(notifier.consent_log); an optional confirmation (`stop_confirmation`, per language) goes back through the same
account. Anything else, and a number no family has, is logged and otherwise left alone.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from notifier import consent_log, services
from notifier.models import Family, FamilyNotification, FamilyPhone, ProviderAccount
from notifier.openimis import consent
from notifier.phones import normalize_phone
from notifier.providers.base import Provider, ProviderError, redact
from notifier.providers.callbacks import InboundMessage
from notifier.settings import get_config

logger = logging.getLogger(__name__)


@dataclass
class InboundOutcome:
    kind: str  # "stop", "not_a_stop", "unknown_number", "invalid_number"
    phone: str = ""
    families: list[int] = field(default_factory=list)
    confirmed: bool = False

    @property
    def summary(self) -> dict[str, object]:
        return {"kind": self.kind, "families": self.families, "confirmed": self.confirmed}


def _folded(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip()).casefold()


def is_stop(text: str, keywords: list[str]) -> bool:
    """The whole message is one of the keywords, whatever its case and the spaces around it."""
    return _folded(text) in {_folded(keyword) for keyword in keywords}


def _mask(phone: str) -> str:
    return phone[:-4] + "****" if len(phone) > 6 else "****"


def handle_inbound(account: ProviderAccount, provider: Provider, message: InboundMessage) -> InboundOutcome:
    config = get_config()
    phone = normalize_phone(message.sender) or ""
    if not is_stop(message.text, config.stop_keywords):
        logger.info("inbound SMS from %s on account %s is not a STOP; ignored", _mask(phone), account.pk)
        return InboundOutcome("not_a_stop", phone)
    if not phone:
        logger.info("STOP from an invalid number on account %s; ignored", account.pk)
        return InboundOutcome("invalid_number")
    family_ids = list(
        FamilyPhone.objects.filter(phone=phone, family__validity_to__isnull=True)
        .order_by("family_id")
        .values_list("family_id", flat=True)
    )
    if not family_ids:
        logger.info("STOP from %s on account %s matches no family; logged only", _mask(phone), account.pk)
        return InboundOutcome("unknown_number", phone)
    with (
        transaction.atomic(),
        consent_log.consent_source(
            consent_log.Source.INBOUND_SMS, phone=phone, text=message.text, detail=f"account {account.name}"
        ),
    ):
        for family in Family.objects.filter(pk__in=family_ids).order_by("pk"):
            withdraw(family)
    outcome = InboundOutcome("stop", phone, family_ids)
    outcome.confirmed = _confirm(account, provider, phone, family_ids[0])
    logger.info("STOP from %s withdrew the consent of %s family(ies)", _mask(phone), len(family_ids))
    return outcome


def withdraw(family: Family) -> None:
    """Consent off through the consent service; a family already without consent still gets its opt-out noted."""
    current = consent.current_consent(family.pk)
    if current is not None and current.approval_of_sms:
        services.update_family_notification_policy(family.uuid, {"approvalOfNotification": False})
        return
    if current is None:
        current = services.create_family_notification_policy(family.uuid, {"approvalOfNotification": False})
    consent_log.record(
        family.pk, action=consent_log.Action.WITHDRAWN, approval=False, language=current.language_of_sms or ""
    )


def _confirm(account: ProviderAccount, provider: Provider, phone: str, family_id: int) -> bool:
    texts = get_config().stop_confirmation
    if not texts:
        return False
    language = (
        FamilyNotification.objects.filter(family_id=family_id, validity_to__isnull=True)
        .values_list("language_of_sms", flat=True)
        .first()
        or ""
    )
    text = texts.get(language) or texts.get(language.split("-")[0]) or texts.get("en")
    if not text:
        return False
    reference = f"stop-{family_id}-{timezone.now():%Y%m%d%H%M%S}"
    try:
        provider.send(phone, text, reference, metadata={"notification_type": "stop_confirmation"})
    except ProviderError as exc:
        logger.warning(
            "STOP confirmation through account %s failed: %s", account.pk, redact(exc.message, provider.secret_values())
        )
        return False
    return True
