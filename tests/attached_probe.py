"""Run inside a subprocess with OPENIMIS_MODE=attached (tests/openimis_db.py): one action against the openIMIS
fixture database, its result printed as one JSON line. Settings are per process, hence a process per mode.

    python -m tests.attached_probe detect 2026-11-28
    python -m tests.attached_probe consent
    python -m tests.attached_probe report <districtUuid>
    python -m tests.attached_probe refused
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

django.setup()

from django.core.exceptions import ValidationError  # noqa: E402
from django.core.management.base import CommandError  # noqa: E402

from notifier import services  # noqa: E402
from notifier.demo import load_demo  # noqa: E402
from notifier.detection import run_detection  # noqa: E402
from notifier.models import Decision, FamilyPhone, Outbox  # noqa: E402
from notifier.openimis import consent  # noqa: E402
from notifier.openimis.mode import family_sms_spelling  # noqa: E402
from notifier.phones import refresh_family_phones  # noqa: E402
from notifier.report.query import ReportParams, build_report  # noqa: E402
from notifier.types import NOTIFICATION_TYPES  # noqa: E402
from tests.factories import change_form_data  # noqa: E402
from tests.openimis_db import FAMILY_UUIDS  # noqa: E402


def detect(run_date: str) -> dict[str, Any]:
    refresh_family_phones()
    day = dt.date.fromisoformat(run_date)
    for notification_type in NOTIFICATION_TYPES:
        run_detection(notification_type, day)
    return {
        "phones": sorted(FamilyPhone.objects.values_list("family_id", "insuree_id", "phone")),
        "outbox": sorted(
            Outbox.objects.values_list("policy_id", "notification_type", "recipient", "language", "status")
        ),
        "decisions": sorted(Decision.objects.values_list("policy_id", "notification_type", "outcome", "reason")),
    }


def consent_services() -> dict[str, Any]:
    """Family 1 (upper-case UUID given in lower case) changes its consent, family 2's is retired, family 3 gets one
    with the default language; an unchanged update writes nothing."""
    f1, f2, f3 = FAMILY_UUIDS[1].lower(), FAMILY_UUIDS[2].upper(), FAMILY_UUIDS[3]
    services.update_family_notification_policy(f1, {"approvalOfNotification": False, "languageOfNotification": "sw"})
    services.update_family_notification_policy(f1, {"approvalOfNotification": False})
    services.delete_family_notification_policy(f2)
    created = services.create_family_notification_policy(f3, {"approvalOfNotification": True})
    try:
        services.create_family_notification_policy(f3, {"approvalOfNotification": True})
        duplicate = ""
    except ValidationError as exc:
        duplicate = str(exc.message_dict)
    try:
        services.update_family_notification_policy(f1, {"languageOfNotification": "xx"})
        unknown_language = ""
    except ValidationError as exc:
        unknown_language = str(exc.message_dict)
    return {
        "spelling": family_sms_spelling(),
        "keeps_history": consent.keeps_history(),
        "default_language": services.default_language_code(),
        "created": [created.family_id, created.approval_of_sms, created.language_of_sms],
        "duplicate": duplicate,
        "unknown_language": unknown_language,
    }


def report(district_uuid: str) -> dict[str, Any]:
    refresh_family_phones()  # what the dispatcher's start does; the report reads the derived phones
    params = ReportParams.from_query({"districtUuid": district_uuid, "mode": "0"})
    return {"area": params.area_label, "rows": [row.as_dict() for row in build_report(params)]}


def refused() -> dict[str, Any]:
    errors: dict[str, Any] = {}
    try:
        services.update_family(FAMILY_UUIDS[1])
    except ValidationError as exc:
        errors["update_family"] = exc.message_dict
    try:
        services.update_insuree("e0000000-0000-4000-8000-000000000011", {"phone": "0700000000"})
    except ValidationError as exc:
        errors["update_insuree"] = exc.message_dict
    try:
        load_demo()
    except CommandError as exc:
        errors["load_demo"] = str(exc)
    return errors


def admin_pages() -> dict[str, Any]:
    """The admin, signed in as a superuser: openIMIS rows shown read-only, family 1's consent changed inline."""
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    client = Client()
    client.force_login(User.objects.create_superuser("probe", "probe@example.org", "not-used"))
    status: dict[str, Any] = {
        url: client.get(url).status_code
        for url in (
            "/admin/openimis/family/",
            "/admin/openimis/policy/",
            "/admin/openimis/policy/101/change/",
            "/admin/openimis/policy/add/",
            "/admin/openimis/insuree/11/change/",
            "/admin/openimis/language/add/",
            "/admin/openimis/location/4/delete/",
            "/admin/notifier/notificationtemplate/",
        )
    }
    status["POST /admin/openimis/policy/101/change/"] = client.post(
        "/admin/openimis/policy/101/change/", {"status": "8"}
    ).status_code
    url = "/admin/openimis/family/1/change/"
    data = change_form_data(client, url)
    data.pop("notification-0-approval_of_sms", None)  # unticked
    data["notification-0-language_of_sms"] = "sw"
    response = client.post(url, data)
    status[f"POST {url}"] = response.status_code
    if response.status_code != 302:
        status["errors"] = str(response.context["errors"]) if response.context else response.content.decode()[:500]
    return status


def concurrent_create() -> dict[str, Any]:
    """Two threads create family 3's first consent at once: one wins, the other is told it exists."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create(approval: bool) -> None:
        try:
            barrier.wait(timeout=10)
            services.create_family_notification_policy(FAMILY_UUIDS[3], {"approvalOfNotification": approval})
            outcomes.append("created")
        except ValidationError as exc:
            outcomes.append(str(exc.message_dict["family_uuid"][0]))
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return {"outcomes": sorted(outcomes)}


ACTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "detect": detect,
    "consent": consent_services,
    "report": report,
    "refused": refused,
    "admin": admin_pages,
    "concurrent_create": concurrent_create,
}

if __name__ == "__main__":
    action, *arguments = sys.argv[1:]
    print(json.dumps(ACTIONS[action](*arguments), default=str))
