"""Gateway callbacks, one pair of URLs per provider account:

    POST /api/policy_notification/receipts/<callback_token>/   delivery receipts
    POST /api/policy_notification/inbound/<callback_token>/    messages families send us (STOP)

The token is the account's unguessable secret (admin: Provider accounts); where the gateway signs its callbacks
(Twilio's X-Twilio-Signature) the signature is checked too. A bad request is a 400 naming the field, a wrong token a
404, a wrong signature a 403 — never a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from notifier import receipts
from notifier.inbound import handle_inbound
from notifier.models import ProviderAccount
from notifier.providers import account_provider
from notifier.providers.base import Provider, ProviderConfigError
from notifier.providers.callbacks import CallbackError, CallbackKind, CallbackRequest
from notifier.providers.registry import UnknownProviderError
from notifier.settings import get_settings

logger = logging.getLogger(__name__)


def public_url(request: HttpRequest) -> str:
    """The URL as the gateway called it: NOTIFIER_PUBLIC_URL + path when the service sits behind a proxy."""
    base = get_settings().public_url
    return base + request.get_full_path() if base else request.build_absolute_uri()


def callback_request(request: HttpRequest) -> CallbackRequest:
    body: Any = None
    form: dict[str, str] = {}
    content_type = request.content_type or ""
    if request.method == "GET":
        form = {key: request.GET[key] for key in request.GET}
    elif content_type == "application/json":
        try:
            body = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CallbackError(f"body: not valid JSON ({exc})") from None
    else:
        form = {key: request.POST[key] for key in request.POST}
    return CallbackRequest(
        url=public_url(request),
        headers=dict(request.headers),
        form=form,
        json=body,
        query={key: request.GET[key] for key in request.GET},
    )


def _account_and_request(
    request: HttpRequest, token: str
) -> tuple[ProviderAccount, Provider, CallbackRequest] | HttpResponse:
    if request.method not in ("POST", "GET"):
        return HttpResponseNotAllowed(["POST", "GET"])
    account = ProviderAccount.objects.filter(callback_token=token).first()
    if account is None or len(token) < 16:
        return JsonResponse({"error": "unknown callback URL"}, status=404)
    try:
        provider = account_provider(account)
    except (ProviderConfigError, UnknownProviderError) as exc:
        logger.warning("callback for account %s with an invalid config: %s", account.pk, exc)
        return JsonResponse({"error": f"provider account {account.name!r} is misconfigured"}, status=503)
    try:
        parsed = callback_request(request)
    except CallbackError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if not provider.verify_callback(parsed):
        logger.warning("callback for account %s refused: signature does not verify", account.pk)
        return JsonResponse({"error": "signature does not verify"}, status=403)
    return account, provider, parsed


def _receipts(account: ProviderAccount, provider: Provider, parsed: CallbackRequest) -> dict[str, Any]:
    items = provider.parse_receipts(parsed)
    changes = receipts.apply_receipts(account, items)
    return {"received": len(items), "changes": dict(changes)}


def _inbound(account: ProviderAccount, provider: Provider, parsed: CallbackRequest) -> dict[str, Any]:
    items = provider.parse_inbound(parsed)
    outcomes = [handle_inbound(account, provider, item) for item in items]
    return {"received": len(items), "outcomes": [outcome.summary for outcome in outcomes]}


HANDLERS: dict[CallbackKind, Callable[[ProviderAccount, Provider, CallbackRequest], dict[str, Any]]] = {
    "receipt": _receipts,
    "inbound": _inbound,
}


def _callback(request: HttpRequest, token: str, kind: CallbackKind) -> HttpResponse:
    """Account, signature, then the provider parses the callback and we act on it; the answer is our JSON summary
    unless the provider's gateway expects its own format (`Provider.callback_answer`)."""
    found = _account_and_request(request, token)
    if isinstance(found, HttpResponse):
        return found
    account, provider, parsed = found
    try:
        summary = HANDLERS[kind](account, provider, parsed)
    except CallbackError as exc:  # the callback could not be read (raised by the provider's parse, before any change)
        return JsonResponse({"error": str(exc)}, status=400)
    answer = provider.callback_answer(kind)
    if answer is not None:
        return HttpResponse(answer.body, content_type=answer.content_type)
    return JsonResponse(summary)


@csrf_exempt
def receipt(request: HttpRequest, token: str) -> HttpResponse:
    return _callback(request, token, "receipt")


@csrf_exempt
def inbound_message(request: HttpRequest, token: str) -> HttpResponse:
    return _callback(request, token, "inbound")
