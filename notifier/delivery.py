"""Getting one outbox row out exactly once: claim → render → ordered fallback over provider accounts → record.

- Only the worker whose conditional UPDATE (pending → sending) changed the row sends it.
- Enabled accounts are tried in priority order; an open circuit breaker skips one; the first success wins.
- A transient failure of every account sends the row back to pending with exponential backoff and jitter, until
  `max_attempts`; then it is failed. A permanent failure moves on and that account is never tried again for this
  row (until an operator resends it). An unknown outcome stops at once: the SMS may have gone out, so the row
  becomes `unknown` and is never resent automatically.
- A provider that only records messages (text files) never stands in for a failed SMS gateway. When an SMS gateway
  account is enabled, recording accounts keep an audit copy of each message a gateway delivered (never of one it
  did not); only when no SMS gateway account is enabled (development) does a recording account deliver itself.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from notifier import coordination
from notifier.conf import get_config
from notifier.config import NotifierConfig
from notifier.models import DeliveryAttempt, Outbox, ProviderAccount
from notifier.providers import account_provider, seed_provider_accounts
from notifier.providers.base import (
    PermanentError,
    Provider,
    ProviderConfigError,
    TransientError,
    UnknownOutcomeError,
    redact,
)
from notifier.providers.registry import UnknownProviderError, get_provider
from notifier.rendering import RenderError, render_outbox

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 60
BACKOFF_CAP_SECONDS = 3600
RATE_LIMIT_MAX_WAIT_SECONDS = 5.0
Status = Outbox.Status
Outcome = DeliveryAttempt.Outcome


def _config() -> NotifierConfig:
    return get_config()


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff with jitter: between half and all of base * 2^(attempt - 1), capped."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


def outbox_reference(outbox_id: int) -> str:
    """Stable across retries, so a provider (or a file name) can recognise the same message."""
    return f"outbox-{outbox_id}"


def due_outbox_ids(limit: int, now: datetime | None = None) -> list[int]:
    """Pending rows whose next attempt is due, oldest due first (for the sweeper)."""
    now = now or timezone.now()
    due = Outbox.objects.filter(status=Status.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at", "id")
    return list(due.values_list("id", flat=True)[:limit])


def claim(outbox_id: int, now: datetime) -> bool:
    claimed = Outbox.objects.filter(pk=outbox_id, status=Status.PENDING, next_attempt_at__lte=now).update(
        status=Status.SENDING, claimed_at=now, updated_at=now
    )
    return claimed == 1


@dataclass
class _Round:
    """What happened to one message in one delivery run."""

    outbox: Outbox
    text: str
    language: str
    called: int = 0
    transient: bool = False
    skipped: bool = False
    in_flight: ProviderAccount | None = None
    last_account: ProviderAccount | None = None  # the last account actually called, shown as the row's provider
    errors: list[str] = field(default_factory=list)
    recorders: list[ProviderAccount] = field(default_factory=list)  # audit copies after a gateway delivered

    @property
    def last_error(self) -> str:
        return self.errors[-1] if self.errors else ""


def deliver(outbox_id: int) -> str:
    """Send one outbox row. Returns "sent", "pending" (retry scheduled), "failed", "unknown" or "skipped"."""
    now = timezone.now()
    if not claim(outbox_id, now):
        return "skipped"
    outbox = Outbox.objects.get(pk=outbox_id)
    round_: _Round | None = None
    try:
        rendered = _render(outbox)
        if rendered is None:
            return str(Status.FAILED)
        round_ = _Round(outbox=outbox, text=rendered[0], language=rendered[1])
        status = str(_send(round_))
        account = round_.last_account
        logger.info(
            "outbox %s %s after %s call(s)%s",
            outbox_id,
            status,
            round_.called,
            f" (last provider account {account.pk})" if account else "",
        )
        return status
    except BaseException:
        # Never leave a claimed row in `sending`: if a provider call may have gone out its outcome is unknown,
        # otherwise it goes back to pending for a later try.
        logger.exception("delivery of outbox %s crashed", outbox_id)
        if round_ is not None and round_.in_flight is not None:
            _finish(outbox, Status.UNKNOWN, error="delivery crashed during a provider call", account=round_.in_flight)
        else:
            retry_at = timezone.now() + retry_delay(1)
            _finish(outbox, Status.PENDING, error="delivery crashed before sending", next_at=retry_at)
        raise


def _render(outbox: Outbox) -> tuple[str, str] | None:
    """(text, language); the text is rendered once and kept, so every retry sends the same words."""
    if outbox.text:
        return outbox.text, outbox.language
    try:
        rendered = render_outbox(outbox)
    except RenderError as exc:
        _finish(outbox, Status.FAILED, error=f"cannot render: {exc}")
        return None
    Outbox.objects.filter(pk=outbox.pk).update(
        text=rendered.text, encoding=rendered.encoding, segments=rendered.segments
    )
    outbox.text, outbox.encoding, outbox.segments = rendered.text, rendered.encoding, rendered.segments
    return rendered.text, rendered.language


def _accounts(outbox: Outbox) -> tuple[list[ProviderAccount], bool, list[ProviderAccount]]:
    """Enabled accounts in priority order, minus those that already failed permanently for this row.

    The flag says whether any account is enabled at all (none usable then means: all refused this row for good).
    The last list holds the recording accounts that keep audit copies when SMS gateways do the delivering.
    """
    accounts = list(ProviderAccount.objects.filter(enabled=True).order_by("priority", "id"))
    if not accounts and seed_provider_accounts():
        accounts = list(ProviderAccount.objects.filter(enabled=True).order_by("priority", "id"))
    permanent = DeliveryAttempt.objects.filter(outbox=outbox, outcome=Outcome.PERMANENT)
    if outbox.requeued_at is not None:
        permanent = permanent.filter(started_at__gte=outbox.requeued_at)
    excluded = set(permanent.values_list("provider_account_id", flat=True))
    usable = [account for account in accounts if account.pk not in excluded]

    def delivers_sms(account: ProviderAccount) -> bool:
        try:
            return get_provider(account.provider).delivers_sms
        except UnknownProviderError:
            return True

    recorders: list[ProviderAccount] = []
    if any(delivers_sms(account) for account in usable):
        recorders = [account for account in accounts if not delivers_sms(account)]
        usable = [account for account in usable if delivers_sms(account)]
    return usable, bool(accounts), recorders


def _attempt(
    round_: _Round,
    account: ProviderAccount,
    outcome: str,
    *,
    started_at: datetime,
    duration: float = 0.0,
    error: str = "",
    http_status: int | None = None,
    secrets: list[str] | None = None,
) -> None:
    error = redact(error, secrets or [])
    DeliveryAttempt.objects.create(
        outbox=round_.outbox,
        provider_account=account,
        provider=account.provider,
        started_at=started_at,
        duration_ms=round(duration * 1000),
        outcome=outcome,
        http_status=http_status,
        error=error,
    )
    if error:
        round_.errors.append(f"{account.name}: {error}")


def _send(round_: _Round) -> str:
    outbox = round_.outbox
    config = _config()
    accounts, any_enabled, round_.recorders = _accounts(outbox)
    if not accounts and any_enabled:
        _finish(outbox, Status.FAILED, error="every enabled provider account refused this message permanently")
        return Status.FAILED
    if not accounts:
        return _after_failures(round_, config, no_accounts=True)
    for account in accounts:
        started_at = timezone.now()
        try:
            provider: Provider = account_provider(account)
        except (ProviderConfigError, UnknownProviderError) as exc:
            _attempt(round_, account, Outcome.PERMANENT, started_at=started_at, error=f"invalid account: {exc}")
            continue
        if not coordination.breaker_allows(account.pk):
            round_.skipped = True
            _attempt(round_, account, Outcome.SKIPPED, started_at=started_at, error="circuit breaker open")
            continue
        rate = account.rate_limit_per_second or config.rate_limit_per_second
        if coordination.acquire_rate_slot(account.pk, rate, RATE_LIMIT_MAX_WAIT_SECONDS) is None:
            round_.skipped = True
            _attempt(round_, account, Outcome.SKIPPED, started_at=started_at, error=f"rate limit ({rate}/s) saturated")
            continue
        status = _try(round_, account, provider)
        if status is not None:
            return status
    return _after_failures(round_, config)


def _try(round_: _Round, account: ProviderAccount, provider: Provider) -> str | None:
    """One provider call. Returns the row's final status when this call decided it, else None (try the next)."""
    outbox = round_.outbox
    secrets = provider.secret_values()
    started_at = timezone.now()
    clock = time.monotonic()
    round_.in_flight = round_.last_account = account
    round_.called += 1
    try:
        reference = provider.send(
            outbox.recipient,
            round_.text,
            outbox_reference(outbox.pk),
            metadata={"language": round_.language, "notification_type": outbox.notification_type},
        )
    except TransientError as exc:
        round_.in_flight = None
        round_.transient = True
        coordination.record_failure(account.pk)
        _attempt(
            round_,
            account,
            Outcome.TRANSIENT,
            started_at=started_at,
            duration=time.monotonic() - clock,
            error=exc.message,
            http_status=exc.http_status,
            secrets=secrets,
        )
        return None
    except PermanentError as exc:
        round_.in_flight = None
        _attempt(
            round_,
            account,
            Outcome.PERMANENT,
            started_at=started_at,
            duration=time.monotonic() - clock,
            error=exc.message,
            http_status=exc.http_status,
            secrets=secrets,
        )
        return None
    except Exception as exc:
        # UnknownOutcomeError, or a provider bug after which nobody can say whether the SMS left.
        # The row's state is written first: whatever fails afterwards must not make it look unsent.
        duration = time.monotonic() - clock
        message = exc.message if isinstance(exc, UnknownOutcomeError) else f"{type(exc).__name__}: {exc}"
        message = redact(message, secrets)
        http_status = exc.http_status if isinstance(exc, UnknownOutcomeError) else None
        _finish(outbox, Status.UNKNOWN, error=f"{account.name}: {message}", account=account, count_attempt=True)
        round_.in_flight = None
        _attempt(
            round_,
            account,
            Outcome.UNKNOWN,
            started_at=started_at,
            duration=duration,
            error=message,
            http_status=http_status,
        )
        coordination.record_failure(account.pk)
        return Status.UNKNOWN
    duration = time.monotonic() - clock
    _finish(outbox, Status.SENT, account=account, reference=reference[:200], count_attempt=True)
    round_.in_flight = None
    _attempt(round_, account, Outcome.SUCCESS, started_at=started_at, duration=duration)
    coordination.record_success(account.pk)
    _record_copies(round_, account)
    return Status.SENT


def _record_copies(round_: _Round, delivered_by: ProviderAccount) -> None:
    """Audit copies of a message an SMS gateway delivered. They are no delivery attempts (a file is not an SMS),
    and a copy that cannot be written is logged without touching the delivered row."""
    outbox = round_.outbox
    for account in round_.recorders:
        try:
            account_provider(account).send(
                outbox.recipient,
                round_.text,
                outbox_reference(outbox.pk),
                metadata={
                    "language": round_.language,
                    "notification_type": outbox.notification_type,
                    "delivered_by": delivered_by.name,
                },
            )
        except Exception as exc:
            logger.warning("audit copy of outbox %s in account %s failed: %s", outbox.pk, account.pk, exc)


def _after_failures(round_: _Round, config: NotifierConfig, *, no_accounts: bool = False) -> str:
    outbox = round_.outbox
    now = timezone.now()
    if no_accounts:
        round_.errors.append("no enabled provider account left to try")
    elif not round_.transient and not round_.skipped:
        # Every account failed permanently (or is misconfigured): nothing will change by waiting.
        _finish(
            outbox, Status.FAILED, error=round_.last_error, account=round_.last_account, count_attempt=round_.called > 0
        )
        return Status.FAILED
    if not no_accounts and round_.called == 0:
        # Only breakers and rate limits stood in the way: not an attempt, try again once the cooldown is over.
        cooldown = config.circuit_breaker.cooldown_seconds
        next_at = now + timedelta(seconds=cooldown / 2 + random.uniform(0, cooldown / 2))
        _finish(outbox, Status.PENDING, error=round_.last_error, next_at=next_at)
        return Status.PENDING
    attempts = outbox.attempts + 1
    if attempts >= config.max_attempts:
        error = f"gave up after {attempts} attempts; last: {round_.last_error}"
        _finish(outbox, Status.FAILED, error=error, account=round_.last_account, count_attempt=True)
        return Status.FAILED
    _finish(
        outbox,
        Status.PENDING,
        error=round_.last_error,
        account=round_.last_account,
        next_at=now + retry_delay(attempts),
        count_attempt=True,
    )
    return Status.PENDING


def _finish(
    outbox: Outbox,
    status: str,
    *,
    error: str = "",
    account: ProviderAccount | None = None,
    reference: str = "",
    next_at: datetime | None = None,
    count_attempt: bool = False,
) -> None:
    """Move a claimed row out of `sending`; only while it is still ours (an operator may have cancelled it)."""
    now = timezone.now()
    values: dict[str, Any] = {"status": status, "last_error": error[:2000], "updated_at": now}
    if count_attempt:
        values["attempts"] = F("attempts") + 1
    if account is not None:
        values["provider_account"] = account
    if status == Status.SENT:
        values["provider_reference"] = reference
        values["sent_at"] = now
    if next_at is not None:
        values["next_attempt_at"] = next_at
    Outbox.objects.filter(pk=outbox.pk, status=Status.SENDING).update(**values)


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
        kind = type(exc).__name__.removesuffix("Error").lower()
        error = redact(exc.message, provider.secret_values())
        return TrialOutcome(False, f"{account.name}: {kind} failure: {error}")
    return TrialOutcome(True, f"{account.name}: sent to {recipient} (reference {provider_reference})")


# --- operator actions and the sweeper's helpers ------------------------------------------------------------


def resend(outbox_ids: list[int]) -> int:
    """Queue failed, unknown or cancelled rows again, as new: attempts reset, earlier permanent failures forgotten."""
    now = timezone.now()
    return Outbox.objects.filter(
        pk__in=outbox_ids, status__in=[Status.FAILED, Status.UNKNOWN, Status.CANCELLED]
    ).update(status=Status.PENDING, attempts=0, next_attempt_at=now, requeued_at=now, last_error="", updated_at=now)


def cancel(outbox_ids: list[int]) -> int:
    """Cancel rows that are not sent and not being sent right now."""
    return Outbox.objects.filter(pk__in=outbox_ids, status__in=[Status.PENDING, Status.FAILED, Status.UNKNOWN]).update(
        status=Status.CANCELLED, updated_at=timezone.now()
    )


def release_stale_sending(older_than: timedelta, now: datetime | None = None) -> int:
    """Rows stuck in `sending` (a worker died mid-delivery) become `unknown`: the SMS may have left, so no resend."""
    now = now or timezone.now()
    stale = Q(status=Status.SENDING) & (Q(claimed_at__lt=now - older_than) | Q(claimed_at__isnull=True))
    return Outbox.objects.filter(stale).update(
        status=Status.UNKNOWN, last_error="worker stopped while sending; outcome unknown", updated_at=now
    )
