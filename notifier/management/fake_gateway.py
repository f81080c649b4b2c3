"""The project's fake eGA gateway (test_sms) for the demo and `use_fake_gateway`: this web app served in a thread,
and the provider accounts that send to it aimed at a base URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.urls import reverse

from notifier.models import ProviderAccount
from notifier.providers import seed_provider_accounts
from notifier.providers.ega import EGASMSGateway

# Only ever used against the demo's own fake gateway (test_sms), which checks the hash with the same account.
DEMO_EGA_CREDENTIALS = {"PrivateKey": "demo-only-key", "UserId": "demo", "SenderId": "CHF-DEMO", "ServiceId": "1"}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def local_web_server() -> Iterator[str]:
    """This project's own web app on 127.0.0.1 (a free port) in a thread, so the eGA provider can reach test_sms
    without a separate web server. Yields the base URL; stops the server on exit."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, name="demo-web", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def is_fake_gateway_account(account: ProviderAccount) -> bool:
    """An eGA account whose SmsResource is this project's fake gateway (test_sms): it never reaches a phone."""
    return account.provider == EGASMSGateway.slug and (account.config or {}).get("SmsResource") == reverse(
        "notifier:test_sms"
    )


def aim_fake_gateway_accounts(base_url: str) -> list[ProviderAccount]:
    """Seed the accounts from config if there are none; point every fake-gateway eGA account (SmsResource =
    test_sms) at base_url, filling empty credentials with demo ones the fake gateway verifies. Others untouched."""
    seed_provider_accounts()
    aimed = []
    for account in ProviderAccount.objects.filter(provider=EGASMSGateway.slug).order_by("priority", "id"):
        if not is_fake_gateway_account(account):
            continue
        config = {**account.config, "GateUrl": base_url}
        for key, value in DEMO_EGA_CREDENTIALS.items():
            config[key] = config.get(key) or value
        if config != account.config:
            account.config = config
            account.save(update_fields=["config", "updated_at"])
        aimed.append(account)
    return aimed
