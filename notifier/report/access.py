"""Who may generate the report, and how API clients prove who they are.

Rights: the codes in `family_policy_notification_report_perms` (default ["131224"]), each mapped to the Django
permission `notifier.report_right_<code>`; a user needs all of them. An empty list of rights lets every
signed-in user through, which is what the config then says.

Tokens: an API client sends `Authorization: Token <key>`; `manage.py api_token create USER` makes a key (shown
once, stored as its SHA-256 digest). A wrong, revoked or malformed token is a 401, never a redirect to a login
page. People without a session are sent to the report sign-in page (notifier.report.views), which lets
non-staff users in: the admin's login refuses users who are not staff.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group, Permission, PermissionsMixin, User
from django.contrib.auth.views import redirect_to_login
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.urls import reverse
from django.utils import timezone

from notifier.models import ApiToken, NotificationReport
from notifier.settings import get_config

REPORT_GROUP = "Report viewer"


def report_right_codes() -> list[str]:
    return list(get_config().family_policy_notification_report_perms)


def permission_codename(code: str) -> str:
    return f"report_right_{code}"


def required_permissions() -> list[str]:
    return [f"notifier.{permission_codename(code)}" for code in report_right_codes()]


def missing_rights(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """The configured right codes `user` lacks (all of them for an anonymous or inactive user)."""
    if not isinstance(user, PermissionsMixin):
        return report_right_codes()
    return [code for code in report_right_codes() if not user.has_perm(f"notifier.{permission_codename(code)}")]


@transaction.atomic
def ensure_report_permissions() -> list[Permission]:
    """Create the permission of every configured right and put them all in the "Report viewer" group.

    The data migration does this for the config present at migrate time; run `manage.py report_permissions`
    after adding a right code to the config.
    """
    content_type = ContentType.objects.get_for_model(NotificationReport, for_concrete_model=False)
    group, _ = Group.objects.get_or_create(name=REPORT_GROUP)
    permissions = []
    for code in report_right_codes():
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type,
            codename=permission_codename(code),
            defaults={"name": f"Can generate the family policy notification report (right {code})"},
        )
        permissions.append(permission)
    group.permissions.add(*permissions)
    return permissions


TOKEN_PREFIX = "ntf_"  # noqa: S105 - a marker at the start of every key, not a secret
_MAX_KEY_LENGTH = 100

View = Callable[..., HttpResponseBase]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def create_token(user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new token for `user`: (row, key). The key is not stored, only its digest: show it now or never."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:12], digest=_digest(key))
    return token, key


class TokenError(Exception):
    """The Authorization header is not a usable token; the message says why (never echoes the key)."""


def user_for_token_header(header: str) -> User:
    """The active user an `Authorization: Token <key>` header stands for, or TokenError."""
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "token" or not key:
        raise TokenError("Authorization: expected 'Token <key>'")
    if len(key) > _MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise TokenError("Authorization: invalid or revoked token")
    token = ApiToken.objects.select_related("user").filter(digest=_digest(key)).first()
    if token is None or not token.user.is_active:
        raise TokenError("Authorization: invalid or revoked token")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


def report_user_required(view: View) -> View:
    """Token clients are authenticated by their header (401 when it is wrong); people without a session are sent
    to the report sign-in page, which lets non-staff users in."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("token"):
            try:
                request.user = user_for_token_header(header)
            except TokenError as exc:
                response = JsonResponse({"error": str(exc)}, status=401)
                response["WWW-Authenticate"] = "Token"
                return response
        elif not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("notifier:report_login"))
        return view(request, *args, **kwargs)

    return wrapped


def find_user(username: str) -> User | None:
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
