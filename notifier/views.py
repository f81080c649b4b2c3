"""HTTP endpoints of the notifier. test_sms is a fake eGA gateway for demos and development (SPEC §7)."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from notifier.models import FakeGatewayMessage, ProviderAccount
from notifier.providers.base import ProviderConfigError
from notifier.providers.ega import EGAConfig, EGASMSGateway, request_hash
from notifier.safe_input import check_text, first_message, parse_json
from notifier.settings import get_config, get_settings

MAX_BODY_BYTES = 64_000  # an SMS is at most a few segments; this is generous
MAX_MESSAGE_CHARACTERS = 2_000


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
    """A hash made with one of the known non-empty keys. An empty key proves nothing (anyone can sign with it), so
    an account that has none (the seed's default) is never accepted: give it a PrivateKey."""
    for config in _ega_configs():
        if not config.PrivateKey:
            continue
        for header, source in config.header_sources():
            if source != "hash":
                continue
            given = request.headers.get(header, "")
            if given and hmac.compare_digest(given, request_hash(config.PrivateKey, data)):
                return True
    return False


def _bad_request(error: ValidationError) -> JsonResponse:
    field, message = first_message(error)
    return JsonResponse({"error": f"{field}: {message}" if field else message, "field": field}, status=400)


@csrf_exempt
def test_sms(request: HttpRequest) -> HttpResponse:
    """Accept an eGA request whose hash verifies and record it. Answers never echo keys or hashes.

    Whatever the body holds (NUL characters, invalid UTF-8, deep JSON, over-long fields), the answer is a 400 that
    names the part, never a 500, and nothing is recorded.
    """
    if not (settings.DEBUG or get_settings().enable_test_sms):
        raise Http404("test_sms is off (set DEBUG or NOTIFIER_ENABLE_TEST_SMS)")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        body = parse_json(request.body, "body", max_bytes=MAX_BODY_BYTES)
        if not isinstance(body, dict):
            raise ValidationError({"body": "must be a JSON object"})
        if "data" not in body:
            raise ValidationError({"data": "missing"})
        data = body["data"]
        if not isinstance(data, str):
            raise ValidationError({"data": "'data' must be a JSON string"})
        payload = parse_json(data, "data", max_bytes=MAX_BODY_BYTES)
        if not isinstance(payload, dict):
            raise ValidationError({"data": "'data' must hold a JSON object"})
        for key in ("recipients", "message"):
            if key not in payload:
                raise ValidationError({f"data.{key}": "missing"})
        recipients, message = payload["recipients"], payload["message"]
        if not isinstance(message, str) or not message:
            raise ValidationError({"data.message": "must be a non-empty string"})
        check_text("data.message", message, MAX_MESSAGE_CHARACTERS)
        for key, limit in (("recipients", 200), ("sender_id", 100), ("mobile_service_id", 100), ("datetime", 32)):
            value = payload.get(key, "")
            if not isinstance(value, str | int):
                raise ValidationError({f"data.{key}": "must be a string"})
            check_text(f"data.{key}", str(value), limit)
        check_text("X-Auth-Request-Id", request.headers.get("X-Auth-Request-Id", ""), 100)
    except ValidationError as exc:
        return _bad_request(exc)
    if not _signed_by_known_key(request, data):
        return JsonResponse({"error": "request hash does not verify"}, status=401)
    record = FakeGatewayMessage.objects.create(
        recipients=str(recipients),
        message=message,
        sender_id=str(payload.get("sender_id", "")),
        mobile_service_id=str(payload.get("mobile_service_id", "")),
        request_datetime=str(payload.get("datetime", "")),
        user_id=request.headers.get("X-Auth-Request-Id", ""),
    )
    return JsonResponse({"success": True, "reference": f"test-sms-{record.pk}"})
