"""The report as a printable A4 PDF (reportlab): header, one table per village under district / ward headings,
"Page n of m" on every page. Field staff print it, so the member columns appear only when the head has no phone.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfdoc import PDFArray, PDFName, PDFStream, PDFZCompress
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.tables import CellStyle

from notifier.report.query import OpenReport, ReportParams, ReportRow

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
# With 3 points of padding an 11-digit CHFID and a spaced phone number ("+255 62113 2442") fit on one line.
_WIDTHS = (20 * mm, 33 * mm, 23 * mm, 14 * mm, 16 * mm, 26 * mm, 23 * mm, 25 * mm)
CELL_PADDING = 3  # points, left and right
_CELL_FONT, _CELL_SIZE, _CELL_LEADING = "Helvetica", 7.5, 9
_FOOTER_Y = 8 * mm


class _NumberedCanvas(Canvas):  # type: ignore[misc]
    """Stamps "Page n of m" on each page as it is finished. m is known only after the last page, so each page
    draws a form (a PDF XObject) named after its number, and the forms are written at the end, when m is known.

    reportlab keeps every finished page's content stream, as text, until save() (~35 KB a page here): each is
    compressed as soon as the page is shown (~4 KB), so a 2,500-page report does not hold ~90 MB of page text."""

    def showPage(self) -> None:
        self.saveState()
        self.setFont("Helvetica", 8)
        self.drawString(_MARGIN, _FOOTER_Y, TITLE)
        self.doForm(f"page_{self.getPageNumber()}")
        self.restoreState()
        super().showPage()
        page = self._doc.Pages.pages[-1]
        contents = PDFStream(content=PDFZCompress.encode(page.stream))
        contents.dictionary["Filter"] = PDFArray([PDFName(PDFZCompress.pdfname)])  # already applied: not again
        page.Contents, page.stream = contents, None

    def save(self) -> None:
        total = self.getPageNumber() - 1
        for number in range(1, total + 1):
            self.beginForm(f"page_{number}")
            self.setFont("Helvetica", 8)
            self.drawRightString(A4[0] - _MARGIN, _FOOTER_Y, f"Page {number} of {total}")
            self.endForm()
        super().save()


def _styles() -> dict[str, ParagraphStyle]:
    sheet = getSampleStyleSheet()
    return {
        "title": sheet["Title"],
        "header": ParagraphStyle("header", parent=sheet["Normal"], fontSize=9, leading=12),
        "district": ParagraphStyle("district", parent=sheet["Heading2"], keepWithNext=1, spaceBefore=8),
        "ward": ParagraphStyle("ward", parent=sheet["Heading3"], keepWithNext=1, leftIndent=4 * mm),
        "village": ParagraphStyle("village", parent=sheet["Heading4"], keepWithNext=1, leftIndent=8 * mm),
        "cell": ParagraphStyle(
            "cell", parent=sheet["Normal"], fontName=_CELL_FONT, fontSize=_CELL_SIZE, leading=_CELL_LEADING
        ),
        "head_cell": ParagraphStyle(
            "head_cell", parent=sheet["Normal"], fontSize=7.5, leading=9, fontName="Helvetica-Bold", splitLongWords=0
        ),
    }


def _joined(*parts: str | None) -> str:
    return " ".join(part for part in parts if part)


# The widest printable ASCII character of Helvetica ("@"), in points per point of font size: an ASCII text
# whose length times this fits its column fits without measuring it.
_WIDEST_ASCII = 1.0151


def _cell(value: str | None, width: float, style: ParagraphStyle) -> str | Paragraph:
    """A plain string when it fits on one line (most cells: cheap to lay out), else a Paragraph that wraps."""
    if not value:
        return ""
    room = width - 2 * CELL_PADDING
    if len(value) * _WIDEST_ASCII * _CELL_SIZE <= room and value.isascii():
        return value  # fits whatever its characters: not measured
    if stringWidth(value, _CELL_FONT, _CELL_SIZE) <= room:
        return value
    return Paragraph(escape(value), style)


def _cell_style(name: str, **values: Any) -> CellStyle:
    style = CellStyle(name)
    for key, value in values.items():
        setattr(style, key, value)
    return style


# The cells' styles, shared by all cells of a row kind instead of one CellStyle per cell set by TableStyle commands
# for every table (the same values: header row as reportlab's defaults, TOP, 3-point padding; body rows in the cell
# font). The TableStyle keeps only backgrounds and the grid, which reportlab keeps as commands, not per cell.
_HEAD_CELL = _cell_style("head", valign="TOP", leftPadding=CELL_PADDING, rightPadding=CELL_PADDING)
_BODY_CELL = _cell_style(
    "body",
    valign="TOP",
    leftPadding=CELL_PADDING,
    rightPadding=CELL_PADDING,
    fontname=_CELL_FONT,
    fontsize=_CELL_SIZE,
    leading=_CELL_LEADING,
)
_HEAD_ROW_STYLES = [_HEAD_CELL] * len(_COLUMNS)
_BODY_ROW_STYLES = [_BODY_CELL] * len(_COLUMNS)
# The height reportlab computes for a row of one-line strings: a line and the top and bottom padding.
_PLAIN_ROW_HEIGHT = _BODY_CELL.leading + _BODY_CELL.topPadding + _BODY_CELL.bottomPadding

_TABLE_STYLE = TableStyle(
    [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ee")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f5f5f5")]),
    ]
)


class _VillageTable(Table):  # type: ignore[misc]
    """A Table that writes its one-line body cells into one PDF text object (each at the position reportlab's
    _drawCell gives it: left padding in, the top padding and the font size down from the cell's top) instead of
    one text object per cell. Anything else (the header row's Paragraphs, wrapped names) is drawn by reportlab,
    after the text gathered so far is written, so the page's text keeps reportlab's order."""

    _text: Any = None  # the text object being filled
    _curcellstyle: CellStyle | None  # reportlab's: the style whose colour and font the canvas has

    def _drawCell(
        self, cellval: Any, cellstyle: CellStyle, pos: tuple[float, float], size: tuple[float, float]
    ) -> None:
        if cellstyle is not _BODY_CELL or cellval.__class__ is not str or "\n" in cellval:
            self._write_text()
            super()._drawCell(cellval, cellstyle, pos, size)
            return
        if self._curcellstyle is not cellstyle:  # as reportlab's _drawCell: the cell's colour and font
            self._write_text()
            current, canvas = self._curcellstyle, self.canv
            if current is None or cellstyle.color != current.color:
                canvas.setFillColor(cellstyle.color)
            if (
                current is None
                or cellstyle.leading != current.leading
                or cellstyle.fontname != current.fontname
                or cellstyle.fontsize != current.fontsize
            ):
                canvas.setFont(cellstyle.fontname, cellstyle.fontsize, cellstyle.leading)
            self._curcellstyle = cellstyle
        if not cellval:
            return
        colpos, rowpos = pos
        x, y = colpos + cellstyle.leftPadding, rowpos + size[1] - cellstyle.topPadding - cellstyle.fontsize
        text = self._text
        if text is None:
            text = self._text = self.canv.beginText(x, y)
        else:
            text.setTextOrigin(x, y)
        text.textLine(cellval)  # as canvas.drawString (T* after it is harmless: the next cell sets its origin)

    def _write_text(self) -> None:
        if self._text is not None:
            self.canv.drawText(self._text)
            self._text = None

    def _drawLines(self) -> None:
        self._write_text()
        super()._drawLines()


def _village_table(rows: Iterable[ReportRow], styles: dict[str, ParagraphStyle]) -> Table:
    cell = styles["cell"]
    data: list[list[Any]] = [[Paragraph(title, styles["head_cell"]) for title in _COLUMNS]]
    # None: reportlab computes the row's height (the header, a row with a wrapped name); else the fixed height.
    heights: list[float | None] = [None]
    for row in rows:
        texts = (
            row.head_chf_id,
            _joined(row.head_other_names, row.head_last_name),
            row.head_phone,
            "yes" if row.approval else "no",
            row.language,
            _joined(row.member_other_names, row.member_last_name),
            row.member_phone,
            row.sms_phone,
        )
        cells = [_cell(text, width, cell) for text, width in zip(texts, _WIDTHS, strict=True)]
        data.append(cells)
        heights.append(_PLAIN_ROW_HEIGHT if all(value.__class__ is str for value in cells) else None)
    styles_per_row = [_HEAD_ROW_STYLES] + [_BODY_ROW_STYLES] * (len(data) - 1)
    # normalizedData: the cells are already what reportlab's normalizeData makes of them (str or a Paragraph).
    table = _VillageTable(
        data, colWidths=_WIDTHS, rowHeights=heights, repeatRows=1, cellStyles=styles_per_row, normalizedData=1
    )
    table.setStyle(_TABLE_STYLE)
    return table


def _header(
    params: ReportParams, families: int, generated_on: dt.date, styles: dict[str, ParagraphStyle]
) -> list[Flowable]:
    story: list[Flowable] = [
        Paragraph(TITLE, styles["title"]),
        Paragraph(f"<b>Location:</b> {escape(params.area_label)}", styles["header"]),
        Paragraph(f"<b>Mode:</b> {escape(params.mode_label)}", styles["header"]),
        Paragraph(f"<b>Enrolment officer:</b> {escape(params.officer_label)}", styles["header"]),
        Paragraph(f"<b>Date:</b> {generated_on.isoformat()}", styles["header"]),
        Paragraph(f"<b>Families:</b> {families}", styles["header"]),
        Spacer(1, 4 * mm),
    ]
    if not families:
        story.append(Paragraph("No family matches these parameters.", styles["header"]))
    return story


TableMaker = Callable[[Iterable[ReportRow], dict[str, ParagraphStyle]], Table]


def _villages(
    rows: Iterator[ReportRow], styles: dict[str, ParagraphStyle], make_table: TableMaker
) -> Iterator[tuple[int, list[Flowable]]]:
    """Per village, in order: (families so far, its headings and table), the district and ward headings going
    with the first village under them."""
    done = 0
    district = ward = None
    for (village_district, village_ward, village), village_rows in groupby(
        rows, key=lambda row: (row.district, row.ward, row.village)
    ):
        families = list(village_rows)
        done += len(families)
        piece: list[Flowable] = []
        if village_district != district:
            piece.append(Paragraph(f"District: {escape(village_district)}", styles["district"]))
            district, ward = village_district, None
        if village_ward != ward:
            piece.append(Paragraph(f"Ward: {escape(village_ward)}", styles["ward"]))
            ward = village_ward
        piece.append(Paragraph(f"Village: {escape(village)} ({len(families)})", styles["village"]))
        piece.append(make_table(families, styles))
        yield done, piece


def render_report_pdf(
    params: ReportParams,
    report: OpenReport,
    generated_on: dt.date,
    output: BinaryIO | None = None,
    progress: Callable[[float], None] | None = None,
    *,
    make_table: TableMaker | None = None,
) -> bytes:
    """The PDF's bytes, or, with `output`, written there (b"" returned). `progress` gets 0..1 as the families are
    laid out, for the admin's progress bar. `make_table` builds a village's table (default: the fast one; a test
    gives reportlab's stock Table, the reference the fast one must look like).

    The document is laid out a village at a time as the rows come from the cursor (reportlab's build loop, fed
    piece by piece instead of with the whole story), so only one village's rows and flowables are held."""
    styles = _styles()
    buffer = output if output is not None else io.BytesIO()
    document = BaseDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN + 5 * mm,
        title=TITLE,
        author="Policy notification service",
    )
    frame = Frame(document.leftMargin, document.bottomMargin, document.width, document.height, id="normal")
    document.addPageTemplates([PageTemplate(id="page", frames=frame, pagesize=A4)])
    # BaseDocTemplate.build's loop, fed a village at a time instead of with the whole story.
    document._startBuild(canvasmaker=_NumberedCanvas)
    document.canv._doctemplate = document  # as build() does: KeepTogether asks the template for the next frame
    pending = _header(params, report.count, generated_on, styles)
    _lay_out(document, pending)
    for done, piece in _villages(report.rows, styles, make_table or _village_table):
        pending.extend(piece)
        _lay_out(document, pending)
        if progress is not None:
            progress(done / max(report.count, 1))
    del document.canv._doctemplate
    document._endBuild()
    return buffer.getvalue() if output is None and isinstance(buffer, io.BytesIO) else b""


def _lay_out(document: BaseDocTemplate, pending: list[Flowable]) -> None:
    """Place the pending flowables on pages (a split table puts its rest back at the front of the list)."""
    while pending:
        document.clean_hanging()
        document.handle_flowable(pending)
