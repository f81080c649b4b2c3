"""HTTP endpoints of the notifier. test_sms is a fake eGA gateway for demos and development (SPEC §7)."""

from __future__ import annotations

import hmac
import json
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from notifier.conf import get_config
from notifier.models import FakeGatewayMessage, ProviderAccount
from notifier.providers.base import ProviderConfigError
from notifier.providers.ega import EGAConfig, EGASMSGateway, request_hash


def _ega_configs() -> list[EGAConfig]:
    """Every eGA config this service could sign with: its accounts, then the NOTIFIER providers entry."""
    raws: list[Any] = list(ProviderAccount.objects.filter(provider=EGASMSGateway.slug).values_list("config", flat=True))
    for name, raw in get_config().providers.items():
        if name.lower() == EGASMSGateway.slug.lower():
            raws.append(raw)
    configs = []
    for raw in raws:
        try:
            config = EGASMSGateway.parse_config(raw or {})
        except ProviderConfigError:
            continue
        assert isinstance(config, EGAConfig)
        configs.append(config)
    return configs


def _signed_by_known_key(request: HttpRequest, data: str) -> bool:
    for config in _ega_configs():
        for header, source in config.header_sources():
            if source != "hash":
                continue
            given = request.headers.get(header, "")
            if given and hmac.compare_digest(given, request_hash(config.PrivateKey, data)):
                return True
    return False


@csrf_exempt
def test_sms(request: HttpRequest) -> HttpResponse:
    """Accept an eGA request whose hash verifies and record it. Answers never echo keys or hashes."""
    if not (settings.DEBUG or settings.NOTIFIER_ENABLE_TEST_SMS):
        raise Http404("test_sms is off (set DEBUG or NOTIFIER_ENABLE_TEST_SMS)")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        body = json.loads(request.body)
        data = body["data"]
        if not isinstance(data, str):
            raise TypeError("'data' must be a JSON string")
        payload = json.loads(data)
        if not isinstance(payload, dict):
            raise TypeError("'data' must hold a JSON object")
        recipients, message = payload["recipients"], payload["message"]
    except (ValueError, KeyError, TypeError) as exc:
        return JsonResponse({"error": f"malformed request: {exc}"}, status=400)
    if not _signed_by_known_key(request, data):
        return JsonResponse({"error": "request hash does not verify"}, status=401)
    record = FakeGatewayMessage.objects.create(
        recipients=str(recipients)[:200],
        message=str(message),
        sender_id=str(payload.get("sender_id", ""))[:100],
        mobile_service_id=str(payload.get("mobile_service_id", ""))[:100],
        request_datetime=str(payload.get("datetime", ""))[:32],
        user_id=request.headers.get("X-Auth-Request-Id", "")[:100],
    )
    return JsonResponse({"success": True, "reference": f"test-sms-{record.pk}"})
