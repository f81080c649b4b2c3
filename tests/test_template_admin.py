from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from notifier.models import Family, NotificationTemplate, Policy
from notifier.rendering import LONG_SAMPLE_VALUES

PREVIEW_URL = "admin:notifier_notificationtemplate_preview"


@pytest.fixture
def renewal_en(db: None) -> NotificationTemplate:
    return NotificationTemplate.objects.get(notification_type="need_for_renewal", language_id="en")


def test_it_lists_templates_with_encoding_and_worst_case_segments(admin_client: Client) -> None:
    template = NotificationTemplate.objects.get(notification_type="starting_of_policy", language_id="fr")
    template.text = "Bonjour {Name}\u00a0: votre couverture commence le {EffectiveDate}."
    template.save()

    page = admin_client.get(reverse("admin:notifier_notificationtemplate_changelist"))

    assert page.status_code == 200
    body = page.content.decode()
    assert body.count('<td class="field-encoding">GSM-7</td>') == 17
    assert body.count('<td class="field-encoding">UCS-2</td>') == 1
    assert '<td class="field-worst_case_segments">2</td>' in body
    assert "U+00A0" in body


def test_it_shows_the_worst_case_on_the_form(admin_client: Client, renewal_en: NotificationTemplate) -> None:
    page = admin_client.get(reverse("admin:notifier_notificationtemplate_change", args=[renewal_en.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "GSM-7, 168 characters, 2 segment(s)" in body
    assert reverse(PREVIEW_URL) in body  # the live preview script calls it


def test_it_refuses_an_unknown_placeholder_on_save_and_keeps_the_old_text(
    admin_client: Client, renewal_en: NotificationTemplate
) -> None:
    old_text = renewal_en.text
    page = admin_client.post(
        reverse("admin:notifier_notificationtemplate_change", args=[renewal_en.pk]),
        {"notification_type": "need_for_renewal", "language": "en", "text": "Hi {Name}, pay {Amount} now."},
    )
    assert page.status_code == 200
    assert "unknown placeholder {Amount}" in page.content.decode()
    renewal_en.refresh_from_db()
    assert renewal_en.text == old_text
    assert not renewal_en.edited


def test_it_marks_a_template_edited_when_an_operator_changes_its_text(
    admin_client: Client, renewal_en: NotificationTemplate
) -> None:
    page = admin_client.post(
        reverse("admin:notifier_notificationtemplate_change", args=[renewal_en.pk]),
        {"notification_type": "need_for_renewal", "language": "en", "text": "Hi {Name}, renew by {ExpiryDate}."},
    )
    assert page.status_code == 302
    renewal_en.refresh_from_db()
    assert renewal_en.text == "Hi {Name}, renew by {ExpiryDate}."
    assert renewal_en.edited


def test_it_previews_with_long_sample_values_when_no_family_is_chosen(admin_client: Client) -> None:
    answer = admin_client.get(
        reverse(PREVIEW_URL), {"text": "Dear {Name}, until {ExpiryDate}\u2019s end", "language": "en"}
    ).json()
    assert answer["family"] == "sample values"
    assert answer["text"] == f"Dear {LONG_SAMPLE_VALUES['Name']}, until 31 Dec 2027\u2019s end"
    assert answer["encoding"] == "UCS-2"
    assert answer["ucs2_forcing"] == ["\u2019 (U+2019)"]
    replaced = admin_client.get(
        reverse(PREVIEW_URL), {"text": "it\u2019s {Name}", "language": "en", "replace_lookalikes": "1"}
    ).json()
    assert replaced["encoding"] == "GSM-7"
    assert replaced["text"] == f"it's {LONG_SAMPLE_VALUES['Name']}"


def test_it_previews_for_a_chosen_family_by_chfid_or_id(
    admin_client: Client, make_family: Callable[..., Family], make_policy: Callable[..., Policy]
) -> None:
    family = make_family()
    make_policy(family, expiry_date=dt.date(2027, 3, 9))
    head = family.head_insuree
    assert head is not None
    for reference in (head.chf_id or "", str(family.pk)):
        answer = admin_client.get(
            reverse(PREVIEW_URL),
            {"text": "{InsuranceID} {Name} {ProductCode} {ExpiryDate}", "language": "fr", "family": reference},
        ).json()
        assert answer["text"] == f"{head.chf_id} {head.other_names} {head.last_name} BASIC 09/03/2027"
        assert answer["segments"] == 1


def test_it_answers_a_clear_error_for_a_broken_preview(admin_client: Client, db: None) -> None:
    broken = admin_client.get(reverse(PREVIEW_URL), {"text": "Hi {Nme}", "language": "en"})
    assert broken.status_code == 400
    assert "{Nme}" in broken.json()["error"]
    missing = admin_client.get(reverse(PREVIEW_URL), {"text": "Hi {Name}", "language": "en", "family": "NOPE"})
    assert missing.status_code == 400
    assert "NOPE" in missing.json()["error"]


def test_it_keeps_the_preview_to_staff_allowed_to_see_templates(client: Client, db: None) -> None:
    staff = User.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse(PREVIEW_URL), {"text": "x"}).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_notificationtemplate"))
    assert client.get(reverse(PREVIEW_URL), {"text": "Hi {Name}"}).status_code == 200
    client.logout()
    assert client.get(reverse(PREVIEW_URL), {"text": "Hi {Name}"}).status_code == 302
