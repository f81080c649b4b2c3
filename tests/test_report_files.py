"""notifier.report.files and pdf: a PDF is laid out by a worker, for its requester only; expired files go."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pypdf
import time_machine
from django.test import Client
from django.utils import timezone
from reportlab.pdfbase.pdfmetrics import stringWidth

from notifier.models import ReportFile
from notifier.operator_tasks import operator_housekeeping
from notifier.report.files import file_path, produce
from notifier.report.pdf import _COLUMNS, _WIDTHS, CELL_PADDING
from tests.factories import bulk_families
from tests.report_helpers import (
    REPORT_URL,
    VALID_PHONE,
    Answer,
    Tree,
    add_family,
    add_officer,
    get_report,
    report_user,
)


def _pdf(client: Client, capture: Any, **query: str) -> Any:
    """A PDF is produced by a worker (in-process here): 202 with a status REPORT_URL, then the download."""
    with capture(execute=True):
        started = get_report(client, **query)
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


def test_no_header_word_of_the_pdf_is_split() -> None:
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
        started = get_report(viewer, districtUuid=str(tree.d1.uuid), format="pdf")
    assert started.status_code == 202
    body = viewer.get(started.json()["statusUrl"]).json()
    assert (body["status"], body["families"], body["format"]) == ("done", 3, "pdf")
    download = Answer(viewer.get(body["downloadUrl"]))
    assert download["Content-Disposition"].startswith('attachment; filename="family_policy_notification_report_D1_')
    assert download.content.startswith(b"%PDF-")
    other = Client()
    other.force_login(report_user("other-viewer", group="Report viewer"))
    assert other.get(body["statusUrl"]).status_code == 404
    assert other.get(body["downloadUrl"]).status_code == 404


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
        assert file_path(report).read_bytes() == get_report(viewer, **query, format=output).content


def test_a_browser_is_sent_to_a_page_that_shows_the_progress(
    tree: Tree, viewer: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        query = {"districtUuid": str(tree.d1.uuid), "format": "pdf"}
        started = viewer.get(REPORT_URL, query, HTTP_ACCEPT="text/html,*/*")
    assert started.status_code == 303
    ReportFile.objects.update(status="running", progress=42)
    page = viewer.get(started["Location"], HTTP_ACCEPT="text/html").content.decode()
    assert '<progress id="report-progress" max="100" value="42">' in page
    assert '<meta http-equiv="refresh" content="2">' in page


def test_expired_report_files_are_deleted(tree: Tree, viewer: Client, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        get_report(viewer, districtUuid=str(tree.d1.uuid), format="pdf")
    report = ReportFile.objects.get()
    assert file_path(report).is_file()
    with time_machine.travel(timezone.now() + dt.timedelta(hours=23)):
        assert operator_housekeeping() == {"report_files_deleted": 0}
    with time_machine.travel(timezone.now() + dt.timedelta(hours=25)):
        assert operator_housekeeping() == {"report_files_deleted": 1}
    assert not file_path(report).exists()
    assert not ReportFile.objects.exists()
