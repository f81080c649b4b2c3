"""Report benchmark: the family notification report of a large area as JSON, CSV and PDF: time and peak RSS.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notifier_bench .venv/bin/python bench/report.py

The areas are picked from the database: for JSON and CSV the region or district whose number of current
families is closest to --families (default 100,000), for PDF the one closest to --pdf-families (default 10,000).
Each format runs in its own child process, so its peak RSS is its own: Django set-up, then exactly what the
endpoint does (notifier.report.views): ReportParams.from_query, open_report (one query, read through a server-side
cursor), then for JSON and CSV the StreamingHttpResponse of json_chunks / csv_chunks, iterated to its last byte as
the WSGI server would (the bytes go to a temporary file, as to a socket), and for PDF render_report_pdf (which
the worker runs). Reported per format: seconds to the first byte (query run, first rows read) and to the last,
SQL statements, rows, output bytes, peak RSS, and the RSS before the report (Django loaded) for reference. The
output is checked (parsed) after the peak RSS is taken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, machine, peak_rss_mb, setup_django, write_results

FORMATS = ("json", "csv", "pdf")


def area_sizes() -> list[dict[str, Any]]:
    """Current families per region and per district (through village -> ward -> district -> region)."""
    from django.db import connection

    query = """
        SELECT area."LocationUUID", area."LocationType", area."LocationCode", count(*)
        FROM "tblFamilies" f
        JOIN "tblLocations" v ON v."LocationId" = f."LocationId"
        JOIN "tblLocations" w ON w."LocationId" = v."ParentLocationId"
        JOIN "tblLocations" d ON d."LocationId" = w."ParentLocationId"
        JOIN "tblLocations" area ON area."LocationId" IN (d."LocationId", d."ParentLocationId")
        WHERE f."ValidityTo" IS NULL AND area."ValidityTo" IS NULL
        GROUP BY area."LocationUUID", area."LocationType", area."LocationCode"
    """
    with connection.cursor() as cursor:
        cursor.execute(query)
        rows = cursor.fetchall()
    return [{"uuid": str(row[0]), "type": row[1], "code": row[2], "families": row[3]} for row in rows]


def pick_area(sizes: list[dict[str, Any]], families: int) -> dict[str, Any]:
    if not sizes:
        raise SystemExit("error: no region or district with current families; run bench/generate.py first")
    return min(sizes, key=lambda area: (abs(area["families"] - families), area["code"]))


def run_case(area: dict[str, Any], output: str) -> dict[str, Any]:
    """One report in this process: build it and serialise it the way the endpoint does."""
    from django.http import StreamingHttpResponse
    from django.utils import timezone

    from bench._common import count_queries
    from notifier.report.formats import csv_chunks, json_chunks
    from notifier.report.pdf import render_report_pdf
    from notifier.report.query import ReportParams, open_report

    rss_before = peak_rss_mb()
    key = "districtUuid" if area["type"] == "D" else "regionUuid"
    with tempfile.TemporaryFile() as sink:
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        with count_queries() as queries:
            params = ReportParams.from_query({key: area["uuid"], "mode": "0"})
            report = open_report(params)
            first_byte = time.perf_counter()
            today = timezone.localdate()
            if output == "pdf":
                sink.write(render_report_pdf(params, report, today))
            else:
                chunks = json_chunks(params, report, today) if output == "json" else csv_chunks(report.rows)
                sink.writelines(StreamingHttpResponse(chunks))
        finished = time.perf_counter()
        cpu = _cpu_seconds() - cpu_before
        peak = peak_rss_mb()
        size = sink.tell()
        sink.seek(0)
        content = sink.read()
    return {
        "format": output,
        "area": area,
        "rows": report.count,
        "bytes": size,
        "seconds": round(finished - started, 3),
        "query_seconds": round(first_byte - started, 3),  # the query ran, its first rows read
        "render_seconds": round(finished - first_byte, 3),
        "cpu_seconds": round(cpu, 3),  # this process only (PostgreSQL's share is not in it): load-independent
        "queries": queries["total"],
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak, 1),
        "valid": _looks_valid(output, content, report.count),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _looks_valid(output: str, content: bytes, rows: int) -> bool:
    if output == "json":
        body = json.loads(content)
        return int(body["count"]) == len(body["rows"]) == rows
    if output == "csv":
        return content.decode("utf-8").count("\r\n") == rows + 1
    return content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")


def _spawn(area: dict[str, Any], output: str, timeout: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(prefix=f"bench-report-{output}-", suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    try:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", output, "--area", json.dumps(area)]
        subprocess.run([*command, "--out", str(out)], check=True, timeout=timeout, cwd=ROOT)
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result
    finally:
        out.unlink(missing_ok=True)


def benchmark(families: int, pdf_families: int, timeout: float = 900) -> dict[str, Any]:
    from django.db import connection

    sizes = area_sizes()
    large, small = pick_area(sizes, families), pick_area(sizes, pdf_families)
    connection.close()
    cases = [_spawn(large, "json", timeout), _spawn(large, "csv", timeout), _spawn(small, "pdf", timeout)]
    return {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Report benchmark: JSON, CSV and PDF of a large area.")
    parser.add_argument("--families", type=int, default=100_000, help="JSON/CSV area size to look for")
    parser.add_argument("--pdf-families", type=int, default=10_000, help="PDF area size to look for")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed to each format")
    parser.add_argument("--json", help="write the result here (default bench/results/report.json)")
    parser.add_argument("--child", choices=FORMATS, help=argparse.SUPPRESS)
    parser.add_argument("--area", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.families < 1 or args.pdf_families < 1:
        parser.error("--families and --pdf-families: must be at least 1")

    setup_django()
    if args.child:
        figures = run_case(json.loads(args.area), args.child)
        Path(args.out).write_text(json.dumps(figures), encoding="utf-8")
        return 0

    result = benchmark(args.families, args.pdf_families, args.timeout)
    for case in result["cases"]:
        area = case["area"]
        print(
            f"{case['format']:>4}: {case['rows']:,} families ({area['type']} {area['code']}), {case['seconds']:.2f} s "
            f"(to the first byte {case['query_seconds']:.2f} s, then {case['render_seconds']:.2f} s), "
            f"CPU here {case['cpu_seconds']:.2f} s, {case['queries']} queries, "
            f"{case['bytes'] / 1e6:.1f} MB, peak RSS {case['peak_rss_mb']:.0f} MiB "
            f"(Django loaded: {case['rss_before_mb']:.0f} MiB), valid output: {case['valid']}"
        )
    print(f"results: {write_results('report', result, args.json)}")
    return 0 if all(case["valid"] for case in result["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
