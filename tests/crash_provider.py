"""A provider for delivery tests that sends for real (JSON over HTTP to a local server), then stops after N sends.

Registered by a test through settings.NOTIFIER_PROVIDER_CLASSES. After `crash_after` successful sends the next
call does not return: `raise` raises a non-provider exception (a bug in the provider), `stop` a BaseException (the
worker being stopped mid-chunk: it escapes the delivery loop), `exit` ends the process at once, as a killed worker
would, without any cleanup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

from notifier.providers.base import Provider, ProviderConfig, classify_status, http_request


class WorkerStopped(BaseException):
    """The worker is going away (what a SIGTERM or a hard time limit does to a task)."""


class CrashingConfig(ProviderConfig):
    url: str
    crash_after: int
    crash_with: Literal["raise", "stop", "exit"] = "raise"


class CrashingProvider(Provider):
    slug = "CrashingTestProvider"
    config_class = CrashingConfig

    def send(self, recipient: str, text: str, reference: str, *, metadata: Mapping[str, str] | None = None) -> str:
        config = self.config
        assert isinstance(config, CrashingConfig)
        sent = getattr(self, "sent", 0)
        if sent >= config.crash_after:
            if config.crash_with == "exit":
                os._exit(70)
            if config.crash_with == "stop":
                raise WorkerStopped(f"stopped after {sent} sends")
            raise RuntimeError(f"provider bug after {sent} sends")
        body = json.dumps({"to": recipient, "text": text, "reference": reference}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        response = http_request(
            "POST", config.url, body=body, headers=headers, timeouts=self.timeouts, session=self.http_session()
        )
        classify_status(response)
        self.sent = sent + 1
        return reference
