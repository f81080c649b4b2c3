"""notifier.report.admin: the report form in the admin, for those with the right only."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.test import Client
from django.urls import reverse

from notifier.report.access import REPORT_GROUP
from tests.report_helpers import (
    REPORT_URL,
    Answer,
    Tree,
    add_family,
    report_user,
)


def test_it_offers_the_report_form_in_the_admin(tree: Tree) -> None:
    client = Client()
    client.force_login(report_user("manager", group=REPORT_GROUP, staff=True))
    admin_url = reverse("admin:notifier_notificationreport_changelist")

    page = client.get(admin_url)
    assert page.status_code == 200
    assert b'name="districtUuid"' not in page.content  # the form speaks in objects; the redirect carries UUIDs
    assert str(tree.d1.uuid).encode() in page.content

    invalid = client.get(admin_url, {"mode": "1", "format": "pdf"})
    assert invalid.status_code == 200
    assert b"Pick a district or a region." in invalid.content

    submitted = client.get(admin_url, {"district": str(tree.d1.uuid), "mode": "1", "format": "csv"})
    assert submitted.status_code == 302
    target = urlsplit(submitted["Location"])
    assert target.path == REPORT_URL
    assert parse_qs(target.query) == {"districtUuid": [str(tree.d1.uuid)], "mode": ["1"], "format": ["csv"]}
    add_family(tree.v1, "Mushi")
    report = Answer(client.get(submitted["Location"]))
    assert report.status_code == 200
    assert "Mushi" in report.content.decode()


def test_it_hides_the_admin_report_from_staff_without_the_right(tree: Tree) -> None:
    client = Client()
    client.force_login(report_user("staff", staff=True))
    assert client.get(reverse("admin:notifier_notificationreport_changelist")).status_code == 403
    assert b"notificationreport" not in client.get(reverse("admin:index")).content
