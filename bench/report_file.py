"""Big-report benchmark: the PDF of the area closest to --families (default 100,000) through the asynchronous path.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/notifier_bench .venv/bin/python bench/report_file.py

Creates the ReportFile row the endpoint creates, then runs, in a child process (the worker), exactly what the
Celery task `notifier.tasks.build_report_file` runs: the report query, then reportlab writing the PDF straight to
its file under VAR_DIR/reports, with progress written to the row. Reported: seconds, peak RSS of that process, the
file's size and pages (parsed with pypdf), the progress values the row went through (polled by this process).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, machine, setup_django, write_results

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from bench._common import setup_django
setup_django()
from notifier.operator_tasks import build_report_file
started = time.perf_counter()
result = build_report_file({report_id})
print(json.dumps({{"seconds": time.perf_counter() - started, "result": result,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=100_000)
    parser.add_argument("--json", help="write the figures here (default bench/results/report_file.json)")
    options = parser.parse_args(argv)
    setup_django()
    import json

    from pypdf import PdfReader

    from bench.report import area_sizes, pick_area
    from notifier.models import ReportFile
    from notifier.report.files import file_path

    area = pick_area(area_sizes(), options.families)
    key = "districtUuid" if area["type"] == "D" else "regionUuid"
    report = ReportFile.objects.create(query={key: area["uuid"], "mode": "0"}, format="pdf")
    seen: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            value = ReportFile.objects.filter(pk=report.pk).values_list("progress", flat=True).first()
            if value is not None and (not seen or seen[-1] != value):
                seen.append(value)
            time.sleep(2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), report_id=report.pk)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    done.set()
    watcher.join(timeout=5)
    if child.returncode != 0:
        print(child.stderr[-3000:], file=sys.stderr)
        return 1
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    report.refresh_from_db()
    path = file_path(report)
    pages = len(PdfReader(str(path)).pages) if path.is_file() else 0
    result: dict[str, Any] = {
        "machine": machine(),
        "area": area,
        "status": report.status,
        "families": report.families,
        "seconds": round(figures["seconds"], 1),
        "peak_rss_mb": round(figures["peak_rss_mb"], 1),
        "bytes": report.size_bytes,
        "pages": pages,
        "progress_seen": seen,
    }
    print(
        f"{area['code']} ({area['families']} families): {report.status} in {result['seconds']} s, peak RSS "
        f"{result['peak_rss_mb']} MiB, {result['bytes']:,} bytes, {pages} pages; progress seen {seen}"
    )
    print(f"written to {write_results('report_file', result, options.json)}")
    path.unlink(missing_ok=True)
    report.delete()
    return 0 if report.status == ReportFile.Status.DONE else 1


if __name__ == "__main__":
    sys.exit(main())
