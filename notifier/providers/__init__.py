"""SMS provider plug-ins (SPEC §7) and the provider accounts built from them."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.urls import reverse

from notifier.config import ConfigError
from notifier.models import ProviderAccount
from notifier.providers.base import Provider, ProviderConfigError, Timeouts
from notifier.providers.registry import UnknownProviderError, find_provider, get_provider
from notifier.settings import get_config, get_settings

__all__ = ["account_provider", "check_provider_config", "seed_provider_accounts"]

_PRIORITY_STEP = 10


def _timeouts() -> Timeouts:
    config = get_config()
    return Timeouts(connect=config.http_connect_timeout_seconds, read=config.http_read_timeout_seconds)


def account_provider(account: ProviderAccount) -> Provider:
    """A ready provider for `account`; ProviderConfigError / UnknownProviderError name what is wrong.

    Its HTTP calls reuse this process's keep-alive connections for the account.
    """
    cls = get_provider(account.provider)
    provider = cls(cls.parse_config(account.config or {}), _timeouts(), session_key=("account", account.pk))
    public = get_settings().public_url
    if public and account.callback_token:
        provider.receipt_url = public + reverse("notifier:receipt", args=[account.callback_token])
    return provider


def check_provider_config(providers: dict[str, dict[str, Any]] | None = None) -> None:
    """Validate each `providers` entry with its provider class; ConfigError names the entry and the field."""
    for name, raw in (get_config().providers if providers is None else providers).items():
        try:
            find_provider(name).parse_config(raw)
        except (UnknownProviderError, ProviderConfigError) as exc:
            raise ConfigError(f"NOTIFIER config: 'providers.{name}': {exc}") from None


def seed_provider_accounts() -> list[ProviderAccount]:
    """Create one account per entry of NOTIFIER["providers"], in config order, when there is no account yet.

    The seed's key names its provider class case-insensitively. Returns the accounts created (none if any existed).
    """
    if ProviderAccount.objects.exists():
        return []
    providers = get_config().providers
    planned: list[ProviderAccount] = []
    for position, (name, raw) in enumerate(providers.items(), start=1):
        try:
            cls = find_provider(name)
            config = cls.parse_config(raw)
        except (UnknownProviderError, ProviderConfigError) as exc:
            raise ConfigError(f"NOTIFIER config: 'providers.{name}': {exc}") from None
        planned.append(
            ProviderAccount(
                name=name,
                provider=cls.slug,
                priority=position * _PRIORITY_STEP,
                enabled=True,
                config=config.model_dump(mode="json"),
            )
        )
    try:
        with transaction.atomic():
            if ProviderAccount.objects.select_for_update().exists():
                return []
            for account in planned:
                account.save(force_insert=True)
    except IntegrityError:  # another worker seeded at the same moment
        return []
    return planned
