"""Report users get in without being staff: the report sign-in page for people, `Authorization: Token` for API
clients (tokens made by `manage.py api_token`)."""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from notifier.models import ApiToken
from notifier.report.access import REPORT_GROUP
from tests.report_helpers import Answer, Tree

REPORT = "/api/policy_notification/communication_by_notification_report/"
LOGIN = "/api/policy_notification/login/"
PAGE = "/api/policy_notification/report/"


def viewer(username: str = "amina", *, group: bool = True) -> User:
    user = User.objects.create_user(username, password="correct horse", is_staff=False)
    if group:
        user.groups.add(Group.objects.get(name=REPORT_GROUP))
    return user


def new_token(username: str) -> str:
    out = io.StringIO()
    call_command("api_token", "create", username, "--name", "district office", stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_a_non_staff_report_viewer_signs_in_and_gets_the_report(tree: Tree) -> None:
    viewer()
    client = Client()
    query = f"districtUuid={tree.d1.uuid}&mode=1"
    first = client.get(f"{REPORT}?{query}")
    assert first.status_code == 302
    login = urlsplit(first["Location"])
    assert login.path == LOGIN
    page = client.get(first["Location"])
    assert page.status_code == 200
    assert b"Sign in" in page.content

    signed_in = client.post(LOGIN, {"username": "amina", "password": "correct horse", "next": f"{REPORT}?{query}"})
    assert signed_in.status_code == 302
    assert signed_in["Location"] == f"{REPORT}?{query}"
    report = Answer(client.get(signed_in["Location"]))
    assert report.status_code == 200
    assert report.json()["location"]["code"] == tree.d1.code
    # The admin still refuses this user: it is for staff only.
    assert Client().post("/admin/login/", {"username": "amina", "password": "correct horse"}).status_code == 200


def test_a_wrong_password_stays_on_the_sign_in_page(tree: Tree) -> None:
    viewer()
    response = Client().post(LOGIN, {"username": "amina", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_the_report_page_hands_over_to_the_report_and_says_when_rights_are_missing(tree: Tree) -> None:
    client = Client()
    viewer()
    assert client.login(username="amina", password="correct horse")
    assert b"Generate the report" in client.get(PAGE).content
    picked = client.get(PAGE, {"district": str(tree.d1.uuid), "mode": "1", "format": "csv"})
    assert picked.status_code == 302
    assert picked["Location"].startswith(REPORT) and f"districtUuid={tree.d1.uuid}" in picked["Location"]

    outsider = Client()
    viewer("otto", group=False)
    assert outsider.login(username="otto", password="correct horse")
    refused = outsider.get(PAGE)
    assert refused.status_code == 403
    assert b"lacks the report right(s): 131224" in refused.content
    assert outsider.post("/api/policy_notification/logout/").status_code == 302
    assert outsider.get(PAGE).status_code == 302  # signed out


def test_an_api_client_authenticates_with_its_token(tree: Tree) -> None:
    viewer()
    key = new_token("amina")
    assert key.startswith("ntf_") and len(key) > 40
    token = ApiToken.objects.get()
    assert token.digest != key and key not in token.digest  # only a digest is stored
    response = Answer(
        Client().get(
            REPORT, {"districtUuid": str(tree.d1.uuid), "format": "json"}, headers={"Authorization": f"Token {key}"}
        )
    )
    assert response.status_code == 200
    assert response.json()["location"]["code"] == tree.d1.code
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("Token ntf_not-a-real-key", "Authorization: invalid or revoked token"),
        ("Token ", "Authorization: expected 'Token <key>'"),
        ("Token ntf_\x00abc", "Authorization: invalid or revoked token"),
        ("Token " + "x" * 5000, "Authorization: invalid or revoked token"),
    ],
)
def test_a_wrong_token_is_a_401_never_a_redirect(tree: Tree, header: str, error: str) -> None:
    response = Client().get(REPORT, {"districtUuid": str(tree.d1.uuid)}, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json() == {"error": error}
    assert response["WWW-Authenticate"] == "Token"


def test_a_revoked_token_or_an_inactive_user_is_refused(tree: Tree) -> None:
    user = viewer()
    key = new_token("amina")
    headers = {"Authorization": f"Token {key}"}
    query = {"districtUuid": str(tree.d1.uuid)}
    user.is_active = False
    user.save()
    assert Client().get(REPORT, query, headers=headers).status_code == 401
    user.is_active = True
    user.save()
    assert Client().get(REPORT, query, headers=headers).status_code == 200
    out = io.StringIO()
    call_command("api_token", "revoke", key[:12], stdout=out)
    assert out.getvalue() == "Revoked 1 token(s).\n"
    assert Client().get(REPORT, query, headers=headers).status_code == 401


def test_a_token_of_a_user_without_the_rights_gets_403(tree: Tree) -> None:
    viewer("otto", group=False)
    err = io.StringIO()
    out = io.StringIO()
    call_command("api_token", "create", "otto", stdout=out, stderr=err)
    assert "otto lacks the report right(s) 131224" in err.getvalue()
    response = Client().get(
        REPORT, {"districtUuid": str(uuid.uuid4())}, headers={"Authorization": f"Token {out.getvalue().strip()}"}
    )
    assert response.status_code == 403


def test_the_command_refuses_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="username: no active user 'nobody'"):
        call_command("api_token", "create", "nobody", stdout=io.StringIO())
    assert not ApiToken.objects.exists()
