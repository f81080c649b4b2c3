"""notifier.report.pdf's village tables read exactly as reportlab's stock Table lays them out: the fast path (row
heights given, shared cell styles, one text object per run of one-line cells) changes nothing a reader sees."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

import pypdf
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Paragraph, Table, TableStyle

from notifier.report import pdf
from notifier.report.query import ReportParams, ReportRow, open_report
from tests.factories import bulk_families
from tests.report_helpers import VALID_PHONE, Tree, add_family

_LONG = "Nyamwezi-Kilimanjaro Mwakalinga-Mwansasu"  # wider than the name columns: wrapped


def _stock_table(rows: Iterable[ReportRow], styles: dict[str, ParagraphStyle]) -> Table:
    """The village table as it was built before the fast path: every cell measured, reportlab's Table, the cell
    styles set by TableStyle commands, heights computed by reportlab."""
    cell = styles["cell"]

    def one(value: str | None, width: float) -> str | Paragraph:
        if not value:
            return ""
        if stringWidth(value, pdf._CELL_FONT, pdf._CELL_SIZE) <= width - 2 * pdf.CELL_PADDING:
            return value
        return Paragraph(escape(value), cell)

    data: list[list[Any]] = [[Paragraph(title, styles["head_cell"]) for title in pdf._COLUMNS]]
    for row in rows:
        texts = (
            row.head_chf_id,
            pdf._joined(row.head_other_names, row.head_last_name),
            row.head_phone,
            "yes" if row.approval else "no",
            row.language,
            pdf._joined(row.member_other_names, row.member_last_name),
            row.member_phone,
            row.sms_phone,
        )
        data.append([one(text, width) for text, width in zip(texts, pdf._WIDTHS, strict=True)])
    table = Table(data, colWidths=pdf._WIDTHS, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ee")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f5f5f5")]),
                ("FONT", (0, 1), (-1, -1), pdf._CELL_FONT, pdf._CELL_SIZE, 9),
                ("LEFTPADDING", (0, 0), (-1, -1), pdf.CELL_PADDING),
                ("RIGHTPADDING", (0, 0), (-1, -1), pdf.CELL_PADDING),
            ]
        )
    )
    return table


def _rows(count: int) -> list[ReportRow]:
    rows = []
    for index in range(count):
        wrapped = index % 7 == 3
        rows.append(
            ReportRow(
                district="D",
                ward="W",
                village="V",
                family_uuid=str(index),
                head_chf_id=f"{index:011d}",
                head_other_names="Amani",
                head_last_name=_LONG if wrapped else f"Name{index}",
                head_phone=None if index % 3 else "+255712345678",
                approval=bool(index % 2),
                language=("sw", "en", None)[index % 3],
                member_other_names="Ñandú Žižek" if index % 5 == 0 else None,
                member_last_name=_LONG if index % 11 == 4 else None,
                member_phone="+255 62113 2442" if index % 4 == 0 else None,
                sms_phone="+255712345678",
            )
        )
    return rows


def test_the_row_heights_given_are_those_reportlab_computes() -> None:
    rows = _rows(60)
    styles = pdf._styles()
    fast, stock = pdf._village_table(rows, styles), _stock_table(rows, styles)
    assert fast._argH[1] is not None and None in fast._argH[1:]  # both kinds of row are in the table
    fast.wrap(A4[0], 100_000)
    stock.wrap(A4[0], 100_000)
    assert fast._rowHeights == stock._rowHeights
    assert fast._rowpositions == stock._rowpositions


def _render(tree: Tree, make_table: pdf.TableMaker | None = None) -> bytes:
    params = ReportParams.from_query({"districtUuid": str(tree.d1.uuid), "mode": "0"})
    report = open_report(params, own_transaction=False)
    return pdf.render_report_pdf(params, report, dt.date(2026, 11, 30), make_table=make_table)


def _page(page: pypdf.PageObject) -> tuple[str, list[tuple[str, float, float, Any, float]], list[bytes]]:
    """A page's text, each piece of text with its position, font and size, and the drawing that is not text
    (backgrounds, grid, colours) operator by operator."""
    pieces: list[tuple[str, float, float, Any, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        if text.strip():
            x, y = tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5]
            pieces.append((text, round(x, 3), round(y, 3), font and font.get("/BaseFont"), size))

    text = page.extract_text(visitor_text=visit)
    contents = page.get_contents()
    assert contents is not None
    drawing = re.sub(rb"BT.*?ET", b"", contents.get_data(), flags=re.S)
    return text, pieces, [line for line in drawing.split(b"\n") if line.strip()]


def _read(content: bytes) -> list[tuple[str, list[tuple[str, float, float, Any, float]], list[bytes]]]:
    return [_page(page) for page in pypdf.PdfReader(io.BytesIO(content)).pages]


def test_the_pdf_reads_as_reportlabs_stock_table_lays_it_out(tree: Tree) -> None:
    add_family(tree.v1, _LONG, other_names="Rehema")
    add_family(tree.v1, "Temba", head_phone=None, member_phones=(VALID_PHONE,), approval=None)
    add_family(tree.v1, "Lost & <Found>", language="sw")
    add_family(tree.v1, "Ñandú Žižek")
    add_family(tree.v3, _LONG, head_phone=None, member_phones=(None, VALID_PHONE))
    bulk_families(tree.v2, 130, last_names=[_LONG if index % 9 == 0 else f"Bulk{index}" for index in range(130)])
    bulk_families(tree.v3, 40, head_phone=None)

    fast = _read(_render(tree))
    stock = _read(_render(tree, _stock_table))  # reportlab's own Table, as before the fast path

    assert len(fast) == len(stock) > 2
    for page, (ours, theirs) in enumerate(zip(fast, stock, strict=True), start=1):
        assert ours[0] == theirs[0], f"text of page {page}"
        assert ours[1] == theirs[1], f"text positions, fonts or sizes of page {page}"
        assert ours[2] == theirs[2], f"backgrounds or grid of page {page}"
    text = "\n".join(page[0] for page in fast)
    assert "Lost & <Found>" in text and "Ñandú Žižek" in text
    assert "Nyamwezi-Kilimanjaro" in text and "Nyamwezi-Kilimanjaro Mwakalinga-Mwansasu" not in text  # wrapped
    assert all("SMS to" in page[0] for page in fast[1:])  # the header row on every page the table goes on to
    assert f"Page {len(fast)} of {len(fast)}" in fast[-1][0]
