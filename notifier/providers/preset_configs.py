"""The presets' config words, as each vendor's own documentation names them (Africa's Talking, Twilio, Infobip), and
the status words of their answers and receipts."""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator

from notifier.providers.base import ProviderConfig
from notifier.providers.http_answers import check_url


class AfricasTalkingConfig(ProviderConfig):
    username: str
    api_key: str
    sender: str = ""  # an approved sender id or short code; empty: the account default
    base_url: str = "https://api.africastalking.com"  # sandbox: https://api.sandbox.africastalking.com

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    address_fields: ClassVar[tuple[str, ...]] = ("base_url",)

    @model_validator(mode="after")
    def _check(self) -> AfricasTalkingConfig:
        check_url(self.base_url, "base_url")
        if not self.username:
            raise ValueError("username: required (use 'sandbox' for the sandbox)")
        if not self.api_key:
            raise ValueError("api_key: required")
        return self


# Recipient status codes of the send answer that mean "taken": 100 Processed, 101 Sent, 102 Queued.
AT_ACCEPTED = [100, 101, 102]
AT_DELIVERED = {"Success"}
AT_UNDELIVERED = {"Failed", "Rejected", "AbsentSubscriber", "Expired"}
AT_SENT = {"Sent", "Submitted", "Buffered"}


class TwilioConfig(ProviderConfig):
    account_sid: str
    auth_token: str
    from_number: str = ""
    messaging_service_sid: str = ""
    base_url: str = "https://api.twilio.com"

    secret_fields: ClassVar[tuple[str, ...]] = ("auth_token",)
    address_fields: ClassVar[tuple[str, ...]] = ("base_url",)

    @model_validator(mode="after")
    def _check(self) -> TwilioConfig:
        check_url(self.base_url, "base_url")
        if not self.account_sid.startswith("AC"):
            raise ValueError("account_sid: a Twilio account SID starts with 'AC'")
        if not self.auth_token:
            raise ValueError("auth_token: required")
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("from_number: required unless messaging_service_sid is given")
        return self


TWILIO_DELIVERED = {"delivered"}
TWILIO_UNDELIVERED = {"undelivered", "failed"}
TWILIO_ACCEPTED = {"accepted", "queued", "sending", "sent", "scheduled"}


class InfobipConfig(ProviderConfig):
    base_url: str  # the account's own API address, e.g. https://xxxxx.api.infobip.com
    api_key: str
    sender: str = ""

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    address_fields: ClassVar[tuple[str, ...]] = ("base_url",)

    @model_validator(mode="after")
    def _check(self) -> InfobipConfig:
        check_url(self.base_url, "base_url")
        if not self.api_key:
            raise ValueError("api_key: required")
        return self


INFOBIP_ACCEPTED_GROUPS = ["PENDING", "DELIVERED"]
INFOBIP_UNDELIVERED_GROUPS = {"UNDELIVERABLE", "EXPIRED", "REJECTED"}
