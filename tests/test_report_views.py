"""The report endpoint: who may call it, its parameters, and JSON and CSV, streamed a fetch at a time."""

from __future__ import annotations

import csv
import io
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings

from notifier.report.access import REPORT_GROUP
from notifier.report.query import FETCH_ROWS, FIELDS, ReportParams, ReportRow, build_report
from tests.factories import bulk_families
from tests.report_helpers import (
    BAD_QUERIES,
    INVALID_PHONE,
    REPORT_URL,
    VALID_PHONE,
    Tree,
    add_family,
    add_officer,
    fill_query,
    get_report,
    report_user,
)

# --- access -------------------------------------------------------------------------------------------------


def test_it_sends_an_anonymous_caller_to_the_login_page(tree: Tree) -> None:
    response = Client().get(REPORT_URL, {"districtUuid": str(tree.d1.uuid)})
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/api/policy_notification/login/"  # the report's sign-in page, open to non-staff
    assert parse_qs(location.query)["next"] == [f"{REPORT_URL}?districtUuid={tree.d1.uuid}"]  # back to the same report


def test_it_refuses_a_signed_in_user_without_the_right(tree: Tree) -> None:
    client = Client()
    client.force_login(report_user("clerk"))
    response = get_report(client, districtUuid=str(tree.d1.uuid))
    assert response.status_code == 403
    assert "131224" in response.json()["error"]


def test_it_serves_a_member_of_the_report_viewer_group(tree: Tree, viewer: Client) -> None:
    family = add_family(tree.v1, "Mushi")
    response = get_report(viewer, districtUuid=str(tree.d1.uuid))
    assert response.status_code == 200
    assert [row["family_uuid"] for row in response.json()["rows"]] == [str(family.uuid)]


def test_it_ships_the_right_and_the_group_in_a_migration(db: None) -> None:
    permission = Permission.objects.get(codename="report_right_131224")
    assert permission.content_type.app_label == "notifier"
    assert list(Group.objects.get(name=REPORT_GROUP).permissions.all()) == [permission]


def test_it_requires_every_configured_right(tree: Tree, settings: Settings) -> None:
    user = report_user("partial")
    user.user_permissions.add(Permission.objects.get(codename="report_right_131224"))
    settings.NOTIFIER = {**settings.NOTIFIER, "family_policy_notification_report_perms": ["131224", "999001"]}
    client = Client()
    client.force_login(user)

    refused = get_report(client, districtUuid=str(tree.d1.uuid))
    assert refused.status_code == 403
    assert refused.json()["error"] == "missing report right(s): 999001"

    out = io.StringIO()
    call_command("report_permissions", stdout=out)
    assert "notifier.report_right_999001" in out.getvalue()
    user.groups.add(Group.objects.get(name=REPORT_GROUP))
    client.force_login(User.objects.get(pk=user.pk))  # a fresh user object: no cached permissions
    assert get_report(client, districtUuid=str(tree.d1.uuid)).status_code == 200


def test_it_answers_only_get(tree: Tree, viewer: Client) -> None:
    assert viewer.post(REPORT_URL, {"districtUuid": str(tree.d1.uuid)}).status_code == 405


# --- parameters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "param"), [*BAD_QUERIES, ({"districtUuid": "{d1}", "format": "xlsx"}, "format")])
def test_it_answers_400_naming_the_bad_parameter(tree: Tree, viewer: Client, query: dict[str, str], param: str) -> None:
    response = viewer.get(REPORT_URL, fill_query(tree, query))
    assert response.status_code == 400
    body = response.json()
    assert body["param"] == param
    assert body["error"].startswith(f"{param}: ")


# --- formats --------------------------------------------------------------------------------------------------


def test_it_describes_the_request_in_the_json(tree: Tree, viewer: Client) -> None:
    officer = add_officer("EO7", tree.d1)
    response = get_report(viewer, regionUuid=str(tree.r1.uuid), officerUuid=str(officer.uuid), mode="2")
    body = response.json()
    assert body["location"] == {"uuid": str(tree.r1.uuid), "type": "R", "code": "R1", "name": "Dodoma"}
    assert body["officer"]["code"] == "EO7"
    assert (body["mode"], body["modeLabel"]) == (2, "2 Approval only")
    assert body["date"] == timezone.localdate().isoformat()
    assert (body["count"], body["rows"]) == (0, [])


def test_it_returns_more_than_a_hundred_families_as_json(tree: Tree, viewer: Client) -> None:
    bulk_families(tree.v2, 101)
    bulk_families(tree.v1, 60)
    body = get_report(viewer, districtUuid=str(tree.d1.uuid)).json()
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

    json_rows = [ReportRow(**row) for row in get_report(viewer, **query).json()["rows"]]
    response = get_report(viewer, **query, format="csv")

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


def test_json_and_csv_of_varied_rows_are_byte_for_byte_the_encoders_and_csv_writers(tree: Tree, viewer: Client) -> None:
    """The JSON rows are written from a template and the CSV rows without converting each value: the bytes must be
    those of JsonResponse over the rows' dicts and of csv.writer over their string values (None empty, approval
    true/false), with non-ASCII, quotes, backslashes, commas, None and false in them, over several places."""
    add_family(tree.v1, "O'Brien, Jr.", other_names='Anna "Nana" \\ Zoë', member_phones=(VALID_PHONE,))
    add_family(tree.v1, "Kimaro", head_phone=INVALID_PHONE, member_phones=(None, VALID_PHONE), approval=None)
    add_family(tree.v2, "Ñandú 日本", head_phone=None, language="sw", approval=False)
    add_family(tree.w2, "Wardonly", head_phone="  ")
    add_family(tree.v2, "Mwita", other_names='Baba "Juma"')  # a quote without a comma
    add_family(tree.d2, "Districtonly", approval=False, language="fr")
    bulk_families(tree.v3, 3)
    query = {"regionUuid": str(tree.r1.uuid)}
    rows = build_report(ReportParams.from_query(query))
    assert {row.approval for row in rows} == {True, False}
    assert {row.member_phone is None for row in rows} == {True, False}
    assert len({(row.district, row.ward, row.village) for row in rows}) == 5

    body = get_report(viewer, **query).content
    header = {
        "location": {"uuid": str(tree.r1.uuid), "type": "R", "code": "R1", "name": "Dodoma"},
        "officer": None,
        "mode": 0,
        "modeLabel": "0 All",
        "date": timezone.localdate().isoformat(),
        "count": len(rows),
        "rows": [row.as_dict() for row in rows],
    }
    assert body == JsonResponse(header).content

    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow(
            ["" if v is None else ("true" if v else "false") if v is True or v is False else v for v in row]
        )
    assert get_report(viewer, **query, format="csv").content.decode("utf-8") == expected.getvalue()


def test_it_serves_the_json_report_in_the_same_number_of_queries_for_10_and_1000_families(
    tree: Tree, viewer: Client
) -> None:
    def count(families: int) -> tuple[int, int]:
        bulk_families(tree.v1, families)
        with CaptureQueriesContext(connection) as queries:
            body = get_report(viewer, districtUuid=str(tree.d1.uuid), mode="1").json()
        return body["count"], len(queries)

    small_count, small_queries = count(10)
    large_count, large_queries = count(990)
    assert (small_count, large_count) == (10, 1000)
    assert small_queries == large_queries


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

    response = viewer.get(REPORT_URL, query)
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

    response = viewer.get(REPORT_URL, {**query, "format": "csv"})
    assert isinstance(response, StreamingHttpResponse)
    chunks = [chunk.decode() for chunk in response.streaming_content]
    assert [chunk.count("\r\n") for chunk in chunks] == [1, FETCH_ROWS, 5]
    lines = "".join(chunks).split("\r\n")
    assert lines[0] == ",".join(FIELDS)
    assert lines[1:] == [
        ",".join("true" if value is True else "" if value is None else value for value in row.values())
        for row in expected
    ] + [""]
