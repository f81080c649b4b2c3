"""The report as a printable A4 PDF (reportlab): header, one table per village under district / ward headings,
"Page n of m" on every page. Field staff print it, so the member columns appear only when the head has no phone.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable
from itertools import groupby
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from notifier.report.query import ReportParams, ReportRow

TITLE = "Family policy notification report"
_MARGIN = 15 * mm
# "SMS to" is the number the SMS would go to (as the CSV's sms_phone): the head's, else the member's. Widths are
# chosen so that no header word is split (tests check each word fits its column).
_COLUMNS = (
    "CHFID",
    "Head of family",
    "Head phone",
    "Consent",
    "Language",
    "Member with a phone",
    "Member phone",
    "SMS to",
)
_WIDTHS = (20 * mm, 33 * mm, 21 * mm, 16 * mm, 18 * mm, 26 * mm, 21 * mm, 25 * mm)
CELL_PADDING = 6  # points, left and right: reportlab's Table default


class _PageCountingCanvas(Canvas):  # type: ignore[misc]
    """Holds every finished page until save(), when the total is known, then stamps "Page n of m" on each."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._finished_pages: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._finished_pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._finished_pages)
        for number, state in enumerate(self._finished_pages, start=1):
            self.__dict__.update(state)
            self.setFont("Helvetica", 8)
            self.drawRightString(A4[0] - _MARGIN, 8 * mm, f"Page {number} of {total}")
            self.drawString(_MARGIN, 8 * mm, TITLE)
            super().showPage()
        super().save()


def _styles() -> dict[str, ParagraphStyle]:
    sheet = getSampleStyleSheet()
    return {
        "title": sheet["Title"],
        "header": ParagraphStyle("header", parent=sheet["Normal"], fontSize=9, leading=12),
        "district": ParagraphStyle("district", parent=sheet["Heading2"], keepWithNext=1, spaceBefore=8),
        "ward": ParagraphStyle("ward", parent=sheet["Heading3"], keepWithNext=1, leftIndent=4 * mm),
        "village": ParagraphStyle("village", parent=sheet["Heading4"], keepWithNext=1, leftIndent=8 * mm),
        "cell": ParagraphStyle("cell", parent=sheet["Normal"], fontSize=7.5, leading=9),
        "head_cell": ParagraphStyle(
            "head_cell", parent=sheet["Normal"], fontSize=7.5, leading=9, fontName="Helvetica-Bold", splitLongWords=0
        ),
    }


def _text(value: str | None) -> str:
    return escape(value) if value else ""


def _joined(*parts: str | None) -> str:
    return " ".join(part for part in parts if part)


def _village_table(rows: Iterable[ReportRow], styles: dict[str, ParagraphStyle]) -> Table:
    cell = styles["cell"]
    data: list[list[Any]] = [[Paragraph(title, styles["head_cell"]) for title in _COLUMNS]]
    for row in rows:
        data.append(
            [
                Paragraph(_text(row.head_chf_id), cell),
                Paragraph(_text(_joined(row.head_other_names, row.head_last_name)), cell),
                Paragraph(_text(row.head_phone), cell),
                Paragraph("yes" if row.approval else "no", cell),
                Paragraph(_text(row.language), cell),
                Paragraph(_text(_joined(row.member_other_names, row.member_last_name)), cell),
                Paragraph(_text(row.member_phone), cell),
                Paragraph(_text(row.sms_phone), cell),
            ]
        )
    table = Table(data, colWidths=_WIDTHS, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ee")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f5f5f5")]),
            ]
        )
    )
    return table


def render_report_pdf(
    params: ReportParams,
    rows: list[ReportRow],
    generated_on: dt.date,
    output: BinaryIO | None = None,
    progress: Callable[[float], None] | None = None,
) -> bytes:
    """The PDF's bytes, or, with `output`, written there (b"" returned). `progress` gets 0..1 while the pages are
    laid out (reportlab's progress events), for the admin's progress bar."""
    styles = _styles()
    story: list[Flowable] = [
        Paragraph(TITLE, styles["title"]),
        Paragraph(f"<b>Location:</b> {_text(params.area_label)}", styles["header"]),
        Paragraph(f"<b>Mode:</b> {_text(params.mode_label)}", styles["header"]),
        Paragraph(f"<b>Enrolment officer:</b> {_text(params.officer_label)}", styles["header"]),
        Paragraph(f"<b>Date:</b> {generated_on.isoformat()}", styles["header"]),
        Paragraph(f"<b>Families:</b> {len(rows)}", styles["header"]),
        Spacer(1, 4 * mm),
    ]
    if not rows:
        story.append(Paragraph("No family matches these parameters.", styles["header"]))
    for district, district_rows in groupby(rows, key=lambda row: row.district):
        story.append(Paragraph(f"District: {_text(district)}", styles["district"]))
        for ward, ward_rows in groupby(district_rows, key=lambda row: row.ward):
            story.append(Paragraph(f"Ward: {_text(ward)}", styles["ward"]))
            for village, village_rows in groupby(ward_rows, key=lambda row: row.village):
                families = list(village_rows)
                story.append(Paragraph(f"Village: {_text(village)} ({len(families)})", styles["village"]))
                story.append(_village_table(families, styles))
    buffer = output if output is not None else io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN + 5 * mm,
        title=TITLE,
        author="Policy notification service",
    )
    if progress is not None:
        total = [max(len(story), 1)]

        def on_progress(kind: str, value: int) -> None:
            if kind == "SIZE_EST":
                total[0] = max(int(value), 1)
            elif kind == "PROGRESS":
                progress(min(int(value) / total[0], 1.0))

        document.setProgressCallBack(on_progress)
    document.build(story, canvasmaker=_PageCountingCanvas)
    return buffer.getvalue() if output is None and isinstance(buffer, io.BytesIO) else b""
