"""Fuzz every endpoint and service with what PostgreSQL or Python refuse late: NUL characters, invalid Unicode or
UTF-8, over-long values, deep and huge JSON. Each answer is a 4xx (or a form/validation error) naming the field,
never a 500, and no row is written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.test import Client

from notifier import services
from notifier.models import (
    ApiToken,
    FakeGatewayMessage,
    Family,
    FamilyNotification,
    FamilyPhone,
    Insuree,
    NotificationTemplate,
    ProviderAccount,
)
from notifier.report.access import REPORT_GROUP
from tests.report_helpers import Tree

API = "/api/policy_notification"
NUL = "a\x00b"
LONG = "x" * 500
SURROGATE = "a\ud800b"
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
TABLES = [Family, Insuree, FamilyNotification, FamilyPhone, FakeGatewayMessage, ProviderAccount, ApiToken, User]


def counts() -> dict[str, int]:
    return {model.__name__: model._default_manager.count() for model in TABLES} | {
        "NotificationTemplate": NotificationTemplate.objects.filter(edited=True).count()
    }


@pytest.fixture
def unchanged(db: None) -> Iterator[None]:
    before = counts()
    yield
    assert counts() == before, "a refused input wrote rows"


@pytest.fixture
def anonymous(settings: Any) -> Client:
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    return Client(raise_request_exception=False)


@pytest.fixture
def viewer(db: None) -> Client:
    user = User.objects.create_user("viewer", password="pw")
    user.groups.add(Group.objects.get(name=REPORT_GROUP))
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.fixture
def staff(admin_user: User) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    return client


# --- test_sms: every body is refused with a 400 naming the part -------------------------------------------------


def _sms_body(**payload: Any) -> bytes:
    data = {"recipients": "255712345678", "message": "hello", "sender_id": "CHF", "datetime": "2026-11-28 08:00:00"}
    data.update(payload)
    return json.dumps({"data": json.dumps(data)}).encode()


SMS_BODIES = {
    "NUL in the message": (_sms_body(message=NUL), "data: message: contains a NUL character"),
    "NUL in a key": (_sms_body(**{NUL: 1}), "data: (top): key contains a NUL character"),
    "lone surrogate": (
        b'{"data": "{\\"recipients\\": \\"2557\\", \\"message\\": \\"\\\\ud800\\"}"}',
        "data: message: contains a character that is not valid Unicode",
    ),
    "invalid UTF-8": (b'{"data": "\xff\xfe"}', "body: not valid UTF-8"),
    "raw NUL byte": (b'{"data": "a\x00b"}', "body: not valid JSON"),
    "over-long recipients": (_sms_body(recipients="2" * 500), "data.recipients: at most 200 characters, got 500"),
    "over-long sender": (_sms_body(sender_id=LONG), "data.sender_id: at most 100 characters, got 500"),
    "over-long message": (_sms_body(message="m" * 5000), "data.message: at most 2000 characters, got 5000"),
    "deep array body": (DEEP.encode(), "body: "),
    "deep object body": (DEEP_OBJECT.encode(), "body: "),
    "deep data": (json.dumps({"data": DEEP[:20_000] + DEEP[-20_000:]}).encode(), "data: nested deeper than 32"),
    "huge body": (b'{"data": "' + b"x" * 2_000_000 + b'"}', "body: at most 64000 bytes"),
    "not an object": (b"[1, 2]", "body: must be a JSON object"),
    "message not text": (_sms_body(message={"a": [1]}), "data.message: must be a non-empty string"),
}


@pytest.mark.parametrize("case", list(SMS_BODIES))
def test_test_sms_answers_400_naming_the_part(anonymous: Client, unchanged: None, case: str) -> None:
    body, error = SMS_BODIES[case]
    response = anonymous.post(f"{API}/test_sms/", data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"].startswith(error), response.json()


# --- GET endpoints -------------------------------------------------------------------------------------------------

REPORT_PARAMS = [
    ("districtUuid", NUL),
    ("districtUuid", LONG),
    ("regionUuid", "\ufffd"),  # what invalid UTF-8 in a query string (%ED%A0%80) decodes to
    ("officerUuid", NUL),
    ("mode", NUL),
    ("mode", "9" * 500),
    ("format", NUL),
]


@pytest.mark.parametrize(("param", "value"), REPORT_PARAMS)
def test_the_report_answers_400_naming_the_parameter(
    viewer: Client, tree: Tree, unchanged: None, param: str, value: str
) -> None:
    query = {"districtUuid": str(tree.d1.uuid), "mode": "1", param: value}
    response = viewer.get(f"{API}/communication_by_notification_report/", query)
    assert response.status_code == 400
    assert response.json()["param"] == param
    assert response.json()["error"].startswith(f"{param}: ")


@pytest.mark.parametrize("value", [LONG, "%FF", "\ufffd"])
def test_the_report_page_and_health_refuse_hostile_parameters(
    viewer: Client, anonymous: Client, tree: Tree, unchanged: None, value: str
) -> None:
    page = viewer.get(f"{API}/report/", {"district": value, "officer": value, "mode": "1", "format": "json"})
    assert page.status_code == 200  # the form again, with its errors
    assert set(page.context["form"].errors) >= {"district", "officer"}
    health = anonymous.get(f"{API}/health/", {"checks": value})
    assert health.status_code == 400
    assert health.json()["error"].startswith("checks: unknown check(s)")


@pytest.mark.parametrize("path", [f"{API}/report/", f"{API}/health/", f"{API}/login/", "/admin/"])
def test_a_nul_in_any_query_parameter_is_a_400_naming_it(
    viewer: Client, tree: Tree, unchanged: None, path: str
) -> None:
    response = viewer.get(path, {"mode": "1", "district": NUL})
    assert response.status_code == 400
    assert response.json() == {
        "error": "district: contains a NUL character (\\x00), which cannot be stored",
        "field": "district",
        "param": "district",
    }


def test_no_admin_page_answers_500_to_hostile_lookups(staff: Client, populated_admin: None, unchanged: None) -> None:
    """Every registered admin: search, ordering, paging and filters with NUL or over-long values, an object id
    holding a NUL."""
    from django.contrib import admin
    from django.urls import reverse

    failures = []
    for model in admin.site._registry:
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for query in ["?q=%00", "?q=" + "x" * 5000, "?o=%00", "?p=%00", "?status=%00", "?id__exact=%00", "?%00=1"]:
            status = staff.get(changelist + query).status_code
            if status >= 500 or ("%00" in query and status != 400):
                failures.append((changelist, query[:12], status))
        status = staff.get(f"{changelist}%00/change/").status_code
        if status != 400:
            failures.append((changelist, "NUL id", status))
    assert failures == []


@pytest.fixture
def populated_admin(make_family: Callable[..., Family]) -> None:
    make_family(consent={"approvalOfNotification": True, "languageOfNotification": "en"})


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("family", NUL, "family: contains a NUL character"),
        ("family", LONG, "family: at most 50 characters, got 500"),
        ("family", "9" * 30, "family: no current family with head CHFID or id"),
        ("language", NUL, "language: contains a NUL character"),
        ("language", LONG, "language: at most 20 characters"),
        ("text", NUL, "text: contains a NUL character"),
        ("text", "t" * 5000, "text: at most 2000 characters, got 5000"),
    ],
)
def test_the_template_preview_answers_400_naming_the_parameter(
    staff: Client, unchanged: None, field: str, value: str, error: str
) -> None:
    query = {"text": "Hello {Name}", "language": "en", field: value}
    response = staff.get("/admin/notifier/notificationtemplate/preview/", query)
    assert response.status_code == 400
    assert response.json()["error"].startswith(error), response.json()


# --- forms -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("config", json.dumps({"GateUrl": "http://gw", "PrivateKey": NUL}), "PrivateKey: contains a NUL character"),
        ("config", json.dumps({"GateUrl": f"http://gw/{SURROGATE}"}), "GateUrl: contains a character that is not"),
        ("config", json.dumps({"SenderId": {"a": [1]}}), "SenderId: Input should be a valid string"),
        ("config", DEEP, "nested deeper than 32 levels"),
        ("config", DEEP_OBJECT, "nested deeper than 32 levels"),
        ("config", json.dumps({NUL: 1}), "key contains a NUL character"),
        ("name", NUL, "Null characters are not allowed."),
        ("name", LONG, "Ensure this value has at most 100 characters (it has 500)."),
    ],
)
def test_a_provider_account_form_names_the_field(
    staff: Client, unchanged: None, field: str, value: str, error: str
) -> None:
    data = {"name": "acct", "provider": "eGASMSGateway", "enabled": "on", "priority": "5", "config": "{}"}
    data[field] = value
    response = staff.post("/admin/notifier/provideraccount/add/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert error in " ".join(errors[field]), errors


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("username", NUL, "Null characters are not allowed."),
        ("password", NUL, "Null characters are not allowed."),
        ("__all__", LONG, "Please enter a correct username and password."),
    ],
)
def test_the_report_sign_in_form_names_the_field(
    anonymous: Client, unchanged: None, field: str, value: str, error: str
) -> None:
    data = {"username": "viewer", "password": "pw"}
    data[field if field != "__all__" else "username"] = value
    response = anonymous.post(f"{API}/login/", data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and error in " ".join(errors[field]), errors


def test_invalid_utf8_in_a_query_string_is_no_500(viewer: Client, staff: Client, tree: Tree, unchanged: None) -> None:
    report = viewer.get(f"{API}/communication_by_notification_report/?districtUuid=%ED%A0%80&mode=%FF")
    assert report.status_code == 400
    assert report.json()["param"] == "districtUuid"
    preview = staff.get("/admin/notifier/notificationtemplate/preview/?text=%FF%00&family=%ED%A0%80")
    assert preview.status_code == 400
    assert preview.json()["error"].startswith("text: contains a NUL character")


@pytest.mark.parametrize("value", [NUL, "Hello {Name" + "}" * 100_000])
def test_a_template_form_names_the_field(staff: Client, unchanged: None, value: str) -> None:
    template = NotificationTemplate.objects.get(notification_type="renewal_of_policy", language="en")
    data = {"notification_type": "renewal_of_policy", "language": "en", "text": value}
    response = staff.post(f"/admin/notifier/notificationtemplate/{template.pk}/change/", data)
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["text"]
    template.refresh_from_db()
    assert "\x00" not in template.text


# --- services --------------------------------------------------------------------------------------------------


def head(**overrides: Any) -> services.MemberData:
    values: dict[str, Any] = {"chf_id": "100000001", "last_name": "Mushi", "other_names": "Amani", "head": True}
    values.update(overrides)
    return services.MemberData(**values)


@pytest.fixture
def family(make_family: Callable[..., Family]) -> Family:
    return make_family(consent={"approvalOfNotification": True, "languageOfNotification": "en"})


def deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


SERVICE_CASES: dict[str, tuple[Callable[[Family], Any], str]] = {
    "create_family NUL name": (lambda f: services.create_family([head(last_name=NUL)]), "members[0].last_name"),
    "create_family 500-char name": (
        lambda f: services.create_family([head(other_names=LONG)]),
        "members[0].other_names",
    ),
    "create_family NUL chf_id": (lambda f: services.create_family([head(chf_id="1\x00")]), "members[0].chf_id"),
    "create_family NUL phone": (lambda f: services.create_family([head(phone="07\x0012")]), "members[0].phone"),
    "create_family surrogate": (lambda f: services.create_family([head(last_name=SURROGATE)]), "members[0].last_name"),
    "create_family NUL language": (
        lambda f: services.create_family(
            [head()], contributions={"PolicyNotification": {"languageOfNotification": NUL}}
        ),
        "languageOfNotification",
    ),
    "create_family deep consent": (
        lambda f: services.create_family(
            [head()], contributions={"PolicyNotification": {"approvalOfNotification": deep_dict(100_000)}}
        ),
        "approvalOfNotification",
    ),
    "update_family NUL uuid": (lambda f: services.update_family(NUL * 300), "family_uuid"),
    "delete_family NUL uuid": (lambda f: services.delete_family(NUL), "family_uuid"),
    "update_insuree NUL name": (
        lambda f: services.update_insuree(f.head_insuree.uuid, {"last_name": NUL}),  # type: ignore[union-attr]
        "last_name",
    ),
    "update_insuree long name": (
        lambda f: services.update_insuree(f.head_insuree.uuid, {"other_names": LONG}),  # type: ignore[union-attr]
        "other_names",
    ),
    "update_insuree NUL key": (
        lambda f: services.update_insuree(f.head_insuree.uuid, {NUL: "x"}),  # type: ignore[union-attr]
        "a\\x00b",
    ),
    "create consent NUL uuid": (lambda f: services.create_family_notification_policy(NUL), "family_uuid"),
    "update consent NUL language": (
        lambda f: services.update_family_notification_policy(f.uuid, {"languageOfNotification": NUL}),
        "languageOfNotification",
    ),
    "update consent long language": (
        lambda f: services.update_family_notification_policy(f.uuid, {"languageOfNotification": LONG}),
        "languageOfNotification",
    ),
    "update consent surrogate language": (
        lambda f: services.update_family_notification_policy(f.uuid, {"languageOfNotification": SURROGATE}),
        "languageOfNotification",
    ),
    "update consent NUL key": (
        lambda f: services.update_family_notification_policy(f.uuid, {NUL: True}),
        "a\\x00b",
    ),
    "update consent huge key": (
        lambda f: services.update_family_notification_policy(f.uuid, {"k" * 100_000: True}),
        "k" * 57 + "...",
    ),
    "delete consent NUL uuid": (lambda f: services.delete_family_notification_policy(NUL), "family_uuid"),
    "delete consent deep data": (
        lambda f: services.delete_family_notification_policy(f.uuid, {"approvalOfNotification": deep_dict(1000)}),
        "approvalOfNotification",
    ),
}


@pytest.mark.parametrize("case", list(SERVICE_CASES))
def test_every_service_raises_a_validation_error_naming_the_field(family: Family, case: str) -> None:
    call, field = SERVICE_CASES[case]
    before = counts()
    consent = FamilyNotification.objects.values_list("family_id", "approval_of_sms", "language_of_sms")
    consent_before = sorted(consent)
    with pytest.raises(ValidationError) as raised:
        call(family)
    assert field in raised.value.message_dict, raised.value.message_dict
    assert counts() == before
    assert sorted(consent) == consent_before
