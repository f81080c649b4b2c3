"""Test data, in one place: small factories for families, policies, outbox rows and provider accounts, the policy
fields that make a policy due for a type on a given day, and the admin form a browser would post.

Fixtures that wrap these (make_family, make_policy, make_outbox, due, clock, enable, gateway, ...) live in
tests/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Model
from django.test import Client
from django.utils import timezone

from notifier.detection import DetectionResult, run_detection
from notifier.models import (
    Decision,
    Family,
    FamilyNotification,
    Insuree,
    Location,
    Outbox,
    Policy,
    Product,
    ProviderAccount,
)
from notifier.phones import refresh_family_phones
from notifier.types import NOTIFICATION_TYPES
from tests.gateway import EGA_KEY

TODAY = dt.date(2026, 3, 20)  # the detection tests' pinned day (a Friday)
DAY = dt.timedelta(days=1)
ALL_TYPES_ON = dict.fromkeys(NOTIFICATION_TYPES, True)
DEFAULT_MAX_DELAY = {  # the seed's max_delay_days: how many days late a type may still go out
    "activation_of_policy": 5,
    "starting_of_policy": 2,
    "need_for_renewal": 4,
    "expiration_of_policy": 2,
    "reminder_after_expiration": 5,
    "renewal_of_policy": 5,
}
EXPIRY_TYPES = ["need_for_renewal", "expiration_of_policy", "reminder_after_expiration"]
APPROVED = {"approvalOfNotification": True, "languageOfNotification": "sw"}
FORECAST_HEADER = ["day", "activation", "starting", "renewal_due", "expiration", "reminder", "renewal", "total"]

_numbers = itertools.count(1)


def at(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    """An aware moment on `day` in the scheme's time zone."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


# --- policies due for a type ----------------------------------------------------------------------------------


def due_fields(notification_type: str, event: dt.date, **overrides: Any) -> dict[str, Any]:
    """Policy fields whose event date for `notification_type` is `event` (defaults: reminder days 5)."""
    if notification_type in ("activation_of_policy", "renewal_of_policy"):
        start = event + 5 * DAY  # cover starts later, so starting_of_policy does not supersede activation
        fields: dict[str, Any] = {
            "stage": Policy.Stage.NEW if notification_type == "activation_of_policy" else Policy.Stage.RENEWAL,
            "start_date": start,
            "effective_date": start,
            "expiry_date": start + 364 * DAY,
            "validity_from": at(event),
        }
    elif notification_type == "starting_of_policy":
        fields = {
            "start_date": event,
            "effective_date": event,
            "expiry_date": event + 364 * DAY,
            "validity_from": at(event - 12 * DAY),
        }
    else:
        expiry = {
            "need_for_renewal": event + 5 * DAY,
            "expiration_of_policy": event,
            "reminder_after_expiration": event - 5 * DAY,
        }[notification_type]
        start = expiry - 364 * DAY
        fields = {
            "start_date": start,
            "effective_date": start,
            "expiry_date": expiry,
            "validity_from": at(start - 2 * DAY),
        }
        if notification_type == "reminder_after_expiration":
            fields["status"] = Policy.Status.EXPIRED
    fields.update(overrides)
    return fields


def run_on(clock: Any, day: dt.date, notification_type: str, **kwargs: Any) -> DetectionResult:
    """Move the clock to noon of `day` and run detection the way beat does: no explicit date."""
    clock.move_to(at(day, 12), tick=False)
    return run_detection(notification_type, **kwargs)


def decision_of(policy: Policy, notification_type: str) -> Decision:
    return Decision.objects.get(policy=policy, notification_type=notification_type)


# --- many families at once -------------------------------------------------------------------------------------


def bulk_families(
    location: Location | None,
    count: int,
    *,
    last_names: list[str] | None = None,
    approval: bool = True,
    head_phone: str | None = "0712345678",
) -> list[Family]:
    """`count` one-person families in a handful of statements (bench-style): consent rows (Swahili), and phones
    chosen by the one phone rule."""
    now = timezone.now()
    names = last_names or [f"Bulk{index:05d}" for index in range(count)]
    assert len(names) == count
    families = Family.objects.bulk_create([Family(location=location, validity_from=now) for _ in range(count)])
    heads = Insuree.objects.bulk_create(
        [
            Insuree(
                chf_id=f"B{next(_numbers):09d}",
                last_name=name,
                other_names="Amani",
                family=family,
                head=True,
                phone=head_phone,
                validity_from=now,
            )
            for family, name in zip(families, names, strict=True)
        ]
    )
    for family, head in zip(families, heads, strict=True):
        family.head_insuree = head
    Family.objects.bulk_update(families, ["head_insuree"])
    FamilyNotification.objects.bulk_create(
        [FamilyNotification(family=family, approval_of_sms=approval, language_of_sms="sw") for family in families]
    )
    refresh_family_phones([family.id for family in families])
    return families


def bulk_policies(families: list[Family], product: Product, notification_type: str, event: dt.date) -> list[Policy]:
    """One policy per family, due for `notification_type` on `event`."""
    today = timezone.localdate()
    return Policy.objects.bulk_create(
        [
            Policy(
                family=family,
                product=product,
                **{
                    "status": Policy.Status.ACTIVE,
                    "enroll_date": today - 400 * DAY,
                    **due_fields(notification_type, event),
                },
            )
            for family in families
        ]
    )


# --- outbox rows ----------------------------------------------------------------------------------------------


def outbox_for(
    policy: Policy, notification_type: str = "expiration_of_policy", language: str = "en", **fields: Any
) -> Outbox:
    """An outbox row as detection writes it (one per policy and type: a previous one is replaced)."""
    Outbox.objects.filter(policy=policy, notification_type=notification_type).delete()
    values: dict[str, Any] = {
        "event_date": policy.expiry_date or dt.date(2026, 11, 28),
        "recipient": "+255712345678",
        **fields,
    }
    return Outbox.objects.create(
        policy=policy, family=policy.family, notification_type=notification_type, language=language, **values
    )


def bare_outboxes(
    count: int, text: str = "Your policy expires today.", recipients: list[str] | None = None
) -> list[Outbox]:
    """`count` rendered rows that need no shipped data (languages, templates: transactional tests run after a
    flush), one policy each in one family, recipients +255712000000, +255712000001, … unless given."""
    family = Family.objects.create()
    today = timezone.localdate()
    product = Product.objects.create(code="P1", name="Cover")
    rows = []
    for recipient in recipients or [f"+255712{index:06d}" for index in range(count)]:
        policy = Policy.objects.create(family=family, product=product, enroll_date=today, start_date=today)
        rows.append(
            outbox_for(policy, event_date=today, recipient=recipient, language="fr", text=text),
        )
    return rows


def bare_outbox(text: str, recipient: str = "+255712345678") -> Outbox:
    [row] = bare_outboxes(1, text, [recipient])
    return row


# --- provider accounts ----------------------------------------------------------------------------------------


def ega_config(url: str, **overrides: Any) -> dict[str, Any]:
    """An eGA configuration (the values of the upstream hash vectors in tests/test_providers.py)."""
    return {
        "GateUrl": url,
        "SmsResource": "/api/sms/v1/send",
        "PrivateKey": EGA_KEY,
        "UserId": "user-7",
        "SenderId": "CHF",
        "ServiceId": "42",
        "RequestType": "api",
        **overrides,
    }


def ega_account(
    name: str, url: str, priority: int = 10, *, enabled: bool = True, key: str = EGA_KEY, **config: str
) -> ProviderAccount:
    """An eGA account signing with `key` (a GatewayServer(ega_key=EGA_KEY) accepts the default)."""
    return ProviderAccount.objects.create(
        name=name,
        provider="eGASMSGateway",
        priority=priority,
        enabled=enabled,
        config=ega_config(url, PrivateKey=key, **config),
    )


def json_account(url: str, name: str = "json", priority: int = 10) -> ProviderAccount:
    """A JSON-over-HTTP account posting {"to", "text"} to `url`/send."""
    config = {"url": url + "/send", "body_template": {"to": "{recipient}", "text": "{text}"}}
    return ProviderAccount.objects.create(name=name, provider="HttpJsonProvider", priority=priority, config=config)


# --- the admin and threads ------------------------------------------------------------------------------------


def change_form_data(client: Client, url: str) -> dict[str, Any]:
    """The POST body the change form would send unchanged: main form initial values plus inline management forms."""
    response = client.get(url)
    assert response.status_code == 200
    data: dict[str, Any] = {}
    adminform = response.context["adminform"].form
    for name, field in adminform.fields.items():
        value = adminform.initial.get(name, field.initial)
        if value is not None:
            data[name] = value.pk if isinstance(value, Model) else value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        for form in formset.forms:
            for name, field in form.fields.items():
                value = form.initial.get(name, field.initial)
                if isinstance(value, Model):
                    value = value.pk
                if value is not None and value is not False:
                    data[form.add_prefix(name)] = value
    return data


def in_threads(work: Callable[[], object], count: int = 2, timeout: float = 30) -> None:
    """Run `work` in `count` threads released together (a barrier), each on its own database connection. Raises what
    one of them raised; fails if one is still running after `timeout` seconds."""
    start = threading.Barrier(count, timeout=timeout)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            work()
        except BaseException as error:  # raised again in the calling thread, below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is still running"
    if errors:
        raise errors[0]
