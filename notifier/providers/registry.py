"""Provider classes come from the dotted list in settings.NOTIFIER_PROVIDER_CLASSES; slugs must be unique."""

from __future__ import annotations

from functools import lru_cache

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from notifier.providers.base import Provider
from notifier.settings import get_settings


class UnknownProviderError(LookupError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"unknown provider {slug!r} (registered: {', '.join(provider_classes()) or 'none'})")
        self.slug = slug


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> dict[str, type[Provider]]:
    loaded: dict[str, type[Provider]] = {}
    for path in paths:
        cls = import_string(path)
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ImproperlyConfigured(f"NOTIFIER_PROVIDER_CLASSES: {path} is not a Provider subclass")
        if cls.slug in loaded:
            raise ImproperlyConfigured(f"NOTIFIER_PROVIDER_CLASSES: slug {cls.slug!r} registered twice ({path})")
        loaded[cls.slug] = cls
    return loaded


def provider_classes() -> dict[str, type[Provider]]:
    return dict(_load(get_settings().provider_classes))


def get_provider(slug: str) -> type[Provider]:
    """The provider class registered under `slug` (exact; see `find_provider` for the seed's case-insensitive names)."""
    try:
        return _load(get_settings().provider_classes)[slug]
    except KeyError:
        raise UnknownProviderError(slug) from None


def find_provider(name: str) -> type[Provider]:
    """Seed rule: a `providers` config key names its class case-insensitively."""
    for slug, cls in _load(get_settings().provider_classes).items():
        if slug.lower() == name.lower():
            return cls
    raise UnknownProviderError(name)
