"""Delivery receipts: what a gateway says happened to a message after it took it.

A receipt is matched to its outbox row by our reference when the gateway echoes it (`outbox-<id>`: Infobip's
messageId, the `ref` of a Twilio status-callback URL), else by the gateway's message id stored at send time
(`provider_reference`) within the account, else — for a row whose outcome is `unknown`, so no id was stored — by
the account and recipient when exactly one such row exists.

- delivered / undelivered are final: a `sent`, `unknown` or still `sending` row moves there with the time and the
  gateway's reason; a row already final keeps its first final receipt (gateways repeat and reorder reports).
- accepted (the gateway has the message, not yet delivered) resolves an `unknown` row to `sent`: never resent.
- any receipt's status word and time are kept on the row.
Each change is one conditional UPDATE, so a receipt racing the delivery worker or another receipt is harmless.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifier.models import Outbox, ProviderAccount
from notifier.providers.callbacks import Receipt

logger = logging.getLogger(__name__)
Status = Outbox.Status

FINAL_FROM = [Status.SENT, Status.UNKNOWN, Status.SENDING]


@dataclass(frozen=True)
class ReceiptResult:
    outbox_id: int | None
    change: str  # "delivered", "undelivered", "sent" (an unknown resolved), "noted", "unmatched"


def _outbox_id(reference: str) -> int | None:
    if reference.startswith("outbox-") and reference[7:].isdigit():
        return int(reference[7:])
    return None


def match(account: ProviderAccount, receipt: Receipt) -> int | None:
    """The outbox row a receipt is about, or None."""
    rows = Outbox.objects.filter(Q(provider_account=account) | Q(provider_account__isnull=True))
    by_reference = _outbox_id(receipt.reference)
    if by_reference is not None:
        found = rows.filter(pk=by_reference).values_list("pk", flat=True).first()
        if found is not None:
            return found
    if receipt.provider_id:
        found = (
            Outbox.objects.filter(provider_account=account, provider_reference=receipt.provider_id)
            .values_list("pk", flat=True)
            .first()
        )
        if found is not None:
            return found
    if receipt.recipient:
        unknown = list(
            Outbox.objects.filter(
                provider_account=account, status=Status.UNKNOWN, provider_reference="", recipient=receipt.recipient
            ).values_list("pk", flat=True)[:2]
        )
        if len(unknown) == 1:
            return unknown[0]
    return None


def apply_receipt(account: ProviderAccount, receipt: Receipt) -> ReceiptResult:
    outbox_id = match(account, receipt)
    if outbox_id is None:
        logger.info(
            "receipt for account %s matches no outbox row (id %s, status %s)",
            account.pk,
            receipt.provider_id,
            receipt.status,
        )
        return ReceiptResult(None, "unmatched")
    now = timezone.now()
    row = Outbox.objects.filter(pk=outbox_id)
    noted = {"receipt_status": receipt.status[:40], "receipt_at": now, "updated_at": now}
    if receipt.outcome in ("delivered", "undelivered"):
        final = Status.DELIVERED if receipt.outcome == "delivered" else Status.UNDELIVERED
        changed = row.filter(status__in=FINAL_FROM).update(
            status=final,
            receipt_reason=receipt.reason[:300],
            provider_account=account,
            sent_at=Coalesce("sent_at", now),
            **noted,
        )
        if changed:
            if receipt.provider_id:
                row.filter(provider_reference="").update(provider_reference=receipt.provider_id[:200])
            return ReceiptResult(outbox_id, str(final))
        return ReceiptResult(outbox_id, "noted")
    if receipt.outcome == "accepted":
        resolved = row.filter(status=Status.UNKNOWN).update(
            status=Status.SENT,
            last_error="",
            provider_account=account,
            sent_at=Coalesce("sent_at", now),
            **noted,
        )
        if resolved:
            if receipt.provider_id:
                row.filter(provider_reference="").update(provider_reference=receipt.provider_id[:200])
            return ReceiptResult(outbox_id, str(Status.SENT))
    row.filter(status__in=[Status.SENT, Status.UNKNOWN]).update(**noted)
    return ReceiptResult(outbox_id, "noted")


def apply_receipts(account: ProviderAccount, receipts: list[Receipt]) -> Counter[str]:
    """Apply each receipt; how many rows each change touched (e.g. {"delivered": 2, "unmatched": 1})."""
    return Counter(apply_receipt(account, receipt).change for receipt in receipts)
