"""What an operator does to messages from the admin and the dashboard: resend, cancel, send a test message."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from notifier.humanize import FAILURE_WORDS, plain_excerpt
from notifier.models import Outbox, ProviderAccount
from notifier.providers import account_provider
from notifier.providers.base import PermanentError, ProviderConfigError, TransientError, UnknownOutcomeError, redact
from notifier.providers.registry import UnknownProviderError

Status = Outbox.Status


@dataclass(frozen=True)
class TrialOutcome:
    ok: bool
    message: str


def send_test_message(account: ProviderAccount, recipient: str, text: str) -> TrialOutcome:
    """The admin's "send test message": one real send through `account`, outside the outbox, errors redacted."""
    try:
        provider = account_provider(account)
    except (ProviderConfigError, UnknownProviderError) as exc:
        return TrialOutcome(False, f"{account.name}: invalid account: {exc}")
    reference = f"test-{account.pk}-{timezone.now():%Y%m%d%H%M%S}"
    try:
        provider_reference = provider.send(recipient, text, reference, metadata={"notification_type": "test"})
    except (TransientError, PermanentError, UnknownOutcomeError) as exc:
        kind = FAILURE_WORDS.get(type(exc).__name__, "failure")
        error = plain_excerpt(redact(exc.message, provider.secret_values()), 300)
        return TrialOutcome(False, f"{account.name}: {kind}: {error}")
    return TrialOutcome(True, f"{account.name}: sent to {recipient} (reference {provider_reference})")


def resend(outbox_ids: list[int]) -> int:
    """Queue failed, unknown or cancelled rows again, as new: attempts reset, earlier permanent failures forgotten."""
    now = timezone.now()
    return Outbox.objects.filter(
        pk__in=outbox_ids, status__in=[Status.FAILED, Status.UNKNOWN, Status.CANCELLED]
    ).update(
        status=Status.PENDING,
        attempts=0,
        next_attempt_at=now,
        requeued_at=now,
        last_error="",
        lease_owner="",
        lease_expires_at=None,
        enqueued_at=None,
        updated_at=now,
    )


def cancel(outbox_ids: list[int]) -> int:
    """Cancel rows that are not sent and not being sent right now."""
    return Outbox.objects.filter(pk__in=outbox_ids, status__in=[Status.PENDING, Status.FAILED, Status.UNKNOWN]).update(
        status=Status.CANCELLED, updated_at=timezone.now()
    )
