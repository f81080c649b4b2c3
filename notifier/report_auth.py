"""How report users get in: a sign-in page for people (staff or not), and per-user tokens for API clients.

The admin's login refuses users who are not staff, so a member of "Report viewer" could never open the report.
Here:
- `login/` signs in any active user and sends them back to where they were going (by default `report/`, the
  report form outside the admin); `logout/` (POST) signs out.
- An API client sends `Authorization: Token <key>`; `manage.py api_token create USER` makes a key (shown once,
  stored as its SHA-256 digest). A wrong, revoked or malformed token is a 401, never a redirect to a login page.
The report's rights check (report_access.missing_rights) applies to both.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView, redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from notifier.models import ApiToken
from notifier.report_access import missing_rights

TOKEN_PREFIX = "ntf_"  # noqa: S105 - a marker at the start of every key, not a secret
_MAX_KEY_LENGTH = 100

View = Callable[..., HttpResponse]


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
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
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


class ReportLoginView(LoginView):
    """The admin's sign-in form without its staff-only rule: any active user may sign in here."""

    template_name = "notifier/report_login.html"
    redirect_authenticated_user = True
    next_page = "notifier:report_page"
    extra_context = {"title": "Sign in: family policy notification report"}


def report_logout(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth import logout

    if request.method != "POST":
        return HttpResponse(
            "Sign out with POST (the button on the report page).", status=405, headers={"Allow": "POST"}
        )
    logout(request)
    return HttpResponseRedirect(reverse("notifier:report_login"))


@require_GET
@report_user_required
def report_page(request: HttpRequest) -> HttpResponse:
    """The report form for signed-in users, staff or not; it hands over to the report endpoint."""
    from notifier.report_admin import ReportForm

    lacking = missing_rights(request.user)
    if lacking:
        context: dict[str, Any] = {"title": "Report", "lacking": lacking, "user": request.user}
        return TemplateResponse(request, "notifier/report_page.html", context, status=403)
    form = ReportForm(request.GET if "mode" in request.GET else None)
    if form.is_bound and form.is_valid():
        url = reverse("notifier:communication_by_notification_report")
        return HttpResponseRedirect(f"{url}?{form.report_query()}")
    context = {"title": "Family policy notification report", "form": form, "user": request.user}
    return TemplateResponse(request, "notifier/report_page.html", context)


def find_user(username: str) -> User | None:
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
