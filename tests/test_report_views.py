"""The report endpoint (JSON / CSV / PDF), its access rules, the rights' migration and the admin page."""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pypdf
import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

from notifier.models import ReportFile
from notifier.report.access import REPORT_GROUP
from notifier.report.files import file_path, produce
from notifier.report.query import FETCH_ROWS, FIELDS, ReportRow
from tests.factories import bulk_families
from tests.report_helpers import INVALID_PHONE, VALID_PHONE, Answer, Tree, add_family, add_officer

URL = "/api/policy_notification/communication_by_notification_report/"


def _user(username: str, *, group: str | None = None, staff: bool = False) -> User:
    user = User.objects.create_user(username, password="pw-not-used", is_staff=staff)
    if group is not None:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def viewer(db: None) -> Client:
    client = Client()
    client.force_login(_user("viewer", group=REPORT_GROUP))
    return client


def _get(client: Client, **query: str) -> Answer:
    return Answer(client.get(URL, query))


# --- access -------------------------------------------------------------------------------------------------


def test_it_sends_an_anonymous_caller_to_the_login_page(tree: Tree) -> None:
    response = Client().get(URL, {"districtUuid": str(tree.d1.uuid)})
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/api/policy_notification/login/"  # the report's sign-in page, open to non-staff
    assert parse_qs(location.query)["next"] == [f"{URL}?districtUuid={tree.d1.uuid}"]  # back to the same report


def test_it_refuses_a_signed_in_user_without_the_right(tree: Tree) -> None:
    client = Client()
    client.force_login(_user("clerk"))
    response = _get(client, districtUuid=str(tree.d1.uuid))
    assert response.status_code == 403
    assert "131224" in response.json()["error"]


def test_it_serves_a_member_of_the_report_viewer_group(tree: Tree, viewer: Client) -> None:
    family = add_family(tree.v1, "Mushi")
    response = _get(viewer, districtUuid=str(tree.d1.uuid))
    assert response.status_code == 200
    assert [row["family_uuid"] for row in response.json()["rows"]] == [str(family.uuid)]


def test_it_ships_the_right_and_the_group_in_a_migration(db: None) -> None:
    permission = Permission.objects.get(codename="report_right_131224")
    assert permission.content_type.app_label == "notifier"
    assert list(Group.objects.get(name=REPORT_GROUP).permissions.all()) == [permission]


def test_it_requires_every_configured_right(tree: Tree, settings: Settings) -> None:
    user = _user("partial")
    user.user_permissions.add(Permission.objects.get(codename="report_right_131224"))
    settings.NOTIFIER = {**settings.NOTIFIER, "family_policy_notification_report_perms": ["131224", "999001"]}
    client = Client()
    client.force_login(user)

    refused = _get(client, districtUuid=str(tree.d1.uuid))
    assert refused.status_code == 403
    assert refused.json()["error"] == "missing report right(s): 999001"

    out = io.StringIO()
    call_command("report_permissions", stdout=out)
    assert "notifier.report_right_999001" in out.getvalue()
    user.groups.add(Group.objects.get(name=REPORT_GROUP))
    client.force_login(User.objects.get(pk=user.pk))  # a fresh user object: no cached permissions
    assert _get(client, districtUuid=str(tree.d1.uuid)).status_code == 200


def test_it_answers_only_get(tree: Tree, viewer: Client) -> None:
    assert viewer.post(URL, {"districtUuid": str(tree.d1.uuid)}).status_code == 405


# --- parameters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"mode": "1"}, "districtUuid"),
        ({"districtUuid": "D1"}, "districtUuid"),
        ({"districtUuid": "{unknown}"}, "districtUuid"),
        ({"regionUuid": "{unknown}"}, "regionUuid"),
        ({"regionUuid": "not-a-uuid"}, "regionUuid"),
        ({"districtUuid": "{d1}", "officerUuid": "{unknown}"}, "officerUuid"),
        ({"districtUuid": "{d1}", "officerUuid": "7"}, "officerUuid"),
        ({"districtUuid": "{d1}", "mode": "7"}, "mode"),
        ({"districtUuid": "{d1}", "mode": "all"}, "mode"),
        ({"districtUuid": "{d1}", "format": "xlsx"}, "format"),
    ],
)
def test_it_answers_400_naming_the_bad_parameter(tree: Tree, viewer: Client, query: dict[str, str], param: str) -> None:
    values = {"d1": str(tree.d1.uuid), "unknown": str(uuid.uuid4())}
    response = viewer.get(URL, {key: value.format(**values) for key, value in query.items()})
    assert response.status_code == 400
    body = response.json()
    assert body["param"] == param
    assert body["error"].startswith(f"{param}: ")


# --- formats --------------------------------------------------------------------------------------------------


def test_it_describes_the_request_in_the_json(tree: Tree, viewer: Client) -> None:
    officer = add_officer("EO7", tree.d1)
    response = _get(viewer, regionUuid=str(tree.r1.uuid), officerUuid=str(officer.uuid), mode="2")
    body = response.json()
    assert body["location"] == {"uuid": str(tree.r1.uuid), "type": "R", "code": "R1", "name": "Dodoma"}
    assert body["officer"]["code"] == "EO7"
    assert (body["mode"], body["modeLabel"]) == (2, "2 Approval only")
    assert body["date"] == timezone.localdate().isoformat()
    assert (body["count"], body["rows"]) == (0, [])


def test_it_returns_more_than_a_hundred_families_as_json(tree: Tree, viewer: Client) -> None:
    bulk_families(tree.v2, 101)
    bulk_families(tree.v1, 60)
    body = _get(viewer, districtUuid=str(tree.d1.uuid)).json()
    assert body["count"] == len(body["rows"]) == 161
    assert [row["village"] for row in body["rows"]] == ["V1 Mlimani"] * 60 + ["V2 Bondeni"] * 101


def _from_csv(record: dict[str, str]) -> ReportRow:
    """Read a CSV record back into a row: empty cells are None, approval is true/false."""
    values: dict[str, Any] = {name: (record[name] or None) for name in FIELDS}
    values["approval"] = {"true": True, "false": False}[record["approval"]]
    return ReportRow(**values)


def test_it_writes_csv_that_parses_back_to_the_json_rows(tree: Tree, viewer: Client) -> None:
    add_family(tree.v1, "O'Brien, Jr.", other_names='Anna "Nana"', member_phones=(VALID_PHONE,))
    add_family(tree.v1, "Kimaro", head_phone=INVALID_PHONE, member_phones=(None, VALID_PHONE), approval=None)
    add_family(tree.w2, "Ñandú", head_phone=None, language="sw")
    bulk_families(tree.v3, 5)
    query = {"regionUuid": str(tree.r1.uuid)}

    json_rows = [ReportRow(**row) for row in _get(viewer, **query).json()["rows"]]
    response = _get(viewer, **query, format="csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="family_policy_notification_report_R1_[\d-]+\.csv"', response["Content-Disposition"]
    )
    reader = csv.DictReader(io.StringIO(response.content.decode("utf-8")))
    assert tuple(reader.fieldnames or ()) == FIELDS
    csv_rows = [_from_csv(record) for record in reader]
    assert len(json_rows) == 8
    assert csv_rows == json_rows


def _pdf(client: Client, capture: Any, **query: str) -> Any:
    """A PDF is produced by a worker (in-process here): 202 with a status URL, then the download."""
    with capture(execute=True):
        started = _get(client, **query)
    assert started.status_code == 202
    status_url = started.json()["statusUrl"]
    assert started["Location"] == status_url
    status = client.get(status_url).json()
    assert (status["status"], status["progress"]) == ("done", 100)
    return Answer(client.get(status["downloadUrl"]))


def test_it_renders_a_pdf_that_opens(tree: Tree, viewer: Client, django_capture_on_commit_callbacks: Any) -> None:
    officer = add_officer("EO3", tree.d1)
    add_family(tree.v1, "Mwakyusa", other_names="Rehema")
    add_family(tree.v1, "Temba", head_phone=None, member_phones=(VALID_PHONE,))
    add_family(tree.v1, "Lost & <Found>")  # reportlab reads markup: names must be escaped
    bulk_families(tree.v2, 150)

    response = _pdf(
        viewer,
        django_capture_on_commit_callbacks,
        districtUuid=str(tree.d1.uuid),
        officerUuid="",
        mode="0",
        format="pdf",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(response.content))
    pages = len(reader.pages)
    assert pages > 1
    assert [round(float(value)) for value in reader.pages[0].mediabox[2:]] == [595, 842]  # A4 portrait
    first = reader.pages[0].extract_text()
    assert "Family policy notification report" in first
    assert "Location: District D1 Bahi" in first
    assert "Mode: 0 All" in first
    assert "Date: " + timezone.localdate().isoformat() in first
    assert "Rehema Mwakyusa" in first
    assert "Member1 Temba" in first  # the member column, since the head has no phone
    assert "SMS to" in first and "+255712345678" in first  # the number the SMS would go to, as in the CSV
    assert "Amani Lost & <Found>" in first
    assert "District: D1 Bahi" in first and "Village: V1 Mlimani (3)" in first
    assert f"Page 1 of {pages}" in first
    assert f"Page {pages} of {pages}" in reader.pages[-1].extract_text()
    assert officer.code not in first  # no officer asked for


def test_it_renders_an_empty_pdf_with_its_header(
    tree: Tree, viewer: Client, django_capture_on_commit_callbacks: Any
) -> None:
    officer = add_officer("EO4", tree.d3)
    response = _pdf(
        viewer,
        django_capture_on_commit_callbacks,
        districtUuid=str(tree.d3.uuid),
        officerUuid=str(officer.uuid),
        format="pdf",
    )
    reader = pypdf.PdfReader(io.BytesIO(response.content))
    text = reader.pages[0].extract_text()
    assert len(reader.pages) == 1
    assert "Enrolment officer: EO4 Juma OfficerEO4" in text
    assert "No family matches these parameters." in text


def test_it_serves_the_json_report_in_the_same_number_of_queries_for_10_and_1000_families(
    tree: Tree, viewer: Client
) -> None:
    def count(families: int) -> tuple[int, int]:
        bulk_families(tree.v1, families)
        with CaptureQueriesContext(connection) as queries:
            body = _get(viewer, districtUuid=str(tree.d1.uuid), mode="1").json()
        return body["count"], len(queries)

    small_count, small_queries = count(10)
    large_count, large_queries = count(990)
    assert (small_count, large_count) == (10, 1000)
    assert small_queries == large_queries


# --- admin ----------------------------------------------------------------------------------------------------


def test_it_offers_the_report_form_in_the_admin(tree: Tree) -> None:
    client = Client()
    client.force_login(_user("manager", group=REPORT_GROUP, staff=True))
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
    assert target.path == URL
    assert parse_qs(target.query) == {"districtUuid": [str(tree.d1.uuid)], "mode": ["1"], "format": ["csv"]}
    add_family(tree.v1, "Mushi")
    report = Answer(client.get(submitted["Location"]))
    assert report.status_code == 200
    assert "Mushi" in report.content.decode()


def test_it_hides_the_admin_report_from_staff_without_the_right(tree: Tree) -> None:
    client = Client()
    client.force_login(_user("staff", staff=True))
    assert client.get(reverse("admin:notifier_notificationreport_changelist")).status_code == 403
    assert b"notificationreport" not in client.get(reverse("admin:index")).content


def test_no_header_word_of_the_pdf_is_split():
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from notifier.report.pdf import _COLUMNS, _WIDTHS, CELL_PADDING

    for title, width in zip(_COLUMNS, _WIDTHS, strict=True):
        for word in title.split():
            assert stringWidth(word, "Helvetica-Bold", 7.5) <= width - 2 * CELL_PADDING, (title, word)
    # and the number the SMS goes to, an 11-digit CHFID and a phone as stored with spaces stay on one line (a
    # wrapped cell costs a Paragraph: the CHFID alone once made the 10,000-family PDF ~5x slower)
    assert stringWidth("+255712345678", "Helvetica", 7.5) <= _WIDTHS[-1] - 2 * CELL_PADDING
    assert stringWidth("00013412600", "Helvetica", 7.5) <= _WIDTHS[0] - 2 * CELL_PADDING
    assert stringWidth("+255 62113 2442", "Helvetica", 7.5) <= _WIDTHS[2] - 2 * CELL_PADDING


def test_a_pdf_report_file_is_for_its_requester_only(
    tree: Tree, viewer: Client, django_capture_on_commit_callbacks: Any
) -> None:
    bulk_families(tree.v1, 3)
    with django_capture_on_commit_callbacks(execute=True):
        started = _get(viewer, districtUuid=str(tree.d1.uuid), format="pdf")
    assert started.status_code == 202
    body = viewer.get(started.json()["statusUrl"]).json()
    assert (body["status"], body["families"], body["format"]) == ("done", 3, "pdf")
    download = Answer(viewer.get(body["downloadUrl"]))
    assert download["Content-Disposition"].startswith('attachment; filename="family_policy_notification_report_D1_')
    assert download.content.startswith(b"%PDF-")
    other = Client()
    other.force_login(_user("other-viewer", group="Report viewer"))
    assert other.get(body["statusUrl"]).status_code == 404
    assert other.get(body["downloadUrl"]).status_code == 404


def _expected_rows(families: list[Any]) -> list[dict[str, Any]]:
    """The rows bulk_families' families must come out as, written out field by field."""
    return [
        {
            "district": "D1 Bahi",
            "ward": "W1 Mjini",
            "village": "V1 Mlimani",
            "family_uuid": str(family.uuid),
            "head_chf_id": family.head_insuree.chf_id,
            "head_other_names": "Amani",
            "head_last_name": f"Bulk{index:05d}",
            "head_phone": VALID_PHONE,
            "approval": True,
            "language": "sw",
            "member_other_names": None,
            "member_last_name": None,
            "member_phone": None,
            "sms_phone": "+255712345678",
        }
        for index, family in enumerate(families)
    ]


def test_json_and_csv_stream_a_fetch_at_a_time_and_come_out_whole(tree: Tree, viewer: Client, settings: Any) -> None:
    """More families than one FETCH from the server-side cursor: both formats stream (no worker), in FETCH_ROWS-row
    chunks, and the whole report comes out, byte for byte what the
    non-streaming JsonResponse of the same literal rows would be."""
    families = bulk_families(tree.v1, FETCH_ROWS + 5)
    expected = _expected_rows(families)
    query = {"districtUuid": str(tree.d1.uuid), "mode": "0"}

    response = viewer.get(URL, query)
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/json"
    chunks = list(response.streaming_content)
    assert len(chunks) == 4  # the header, a full fetch of rows, the five rows left, the closing brackets
    header = {
        "location": {"uuid": str(tree.d1.uuid), "type": "D", "code": "D1", "name": "Bahi"},
        "officer": None,
        "mode": 0,
        "modeLabel": "0 All",
        "date": timezone.localdate().isoformat(),
        "count": FETCH_ROWS + 5,
        "rows": expected,
    }
    assert b"".join(chunks) == JsonResponse(header).content

    response = viewer.get(URL, {**query, "format": "csv"})
    assert isinstance(response, StreamingHttpResponse)
    chunks = [chunk.decode() for chunk in response.streaming_content]
    assert [chunk.count("\r\n") for chunk in chunks] == [1, FETCH_ROWS, 5]
    lines = "".join(chunks).split("\r\n")
    assert lines[0] == ",".join(FIELDS)
    assert lines[1:] == [
        ",".join("true" if value is True else "" if value is None else value for value in row.values())
        for row in expected
    ] + [""]


def test_a_json_or_csv_report_queued_for_a_worker_is_written_as_the_endpoint_streams_it(
    tree: Tree, viewer: Client
) -> None:
    """Rows queued by the version that sent big JSON/CSV reports to a worker still complete, with the same bytes."""
    add_family(tree.v1, "Mushi")
    add_family(tree.v3, "Ñandú", head_phone=None, member_phones=(VALID_PHONE,))
    query = {"districtUuid": str(tree.d1.uuid), "mode": "0"}
    for output in ("json", "csv"):
        report = produce(ReportFile.objects.create(query=query, format=output).pk)
        assert (report.status, report.families) == ("done", 2)
        assert file_path(report).read_bytes() == _get(viewer, **query, format=output).content


def test_a_browser_is_sent_to_a_page_that_shows_the_progress(
    tree: Tree, viewer: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        started = viewer.get(URL, {"districtUuid": str(tree.d1.uuid), "format": "pdf"}, HTTP_ACCEPT="text/html,*/*")
    assert started.status_code == 303
    ReportFile.objects.update(status="running", progress=42)
    page = viewer.get(started["Location"], HTTP_ACCEPT="text/html").content.decode()
    assert '<progress id="report-progress" max="100" value="42">' in page
    assert '<meta http-equiv="refresh" content="2">' in page


def test_expired_report_files_are_deleted(tree: Tree, viewer: Client, django_capture_on_commit_callbacks: Any) -> None:
    import datetime as dt

    import time_machine

    from notifier.operator_tasks import operator_housekeeping

    with django_capture_on_commit_callbacks(execute=True):
        _get(viewer, districtUuid=str(tree.d1.uuid), format="pdf")
    report = ReportFile.objects.get()
    assert file_path(report).is_file()
    with time_machine.travel(timezone.now() + dt.timedelta(hours=23)):
        assert operator_housekeeping() == {"report_files_deleted": 0}
    with time_machine.travel(timezone.now() + dt.timedelta(hours=25)):
        assert operator_housekeeping() == {"report_files_deleted": 1}
    assert not file_path(report).exists()
    assert not ReportFile.objects.exists()
