"""Run in a subprocess against an attached database (tests/test_attached_e2e.py): the consent services and the
report for the scenario of tests/openimis_scenario.py, as the service's role; one JSON line out.

    python -m tests.e2e_probe consent <familyUuid>
    python -m tests.e2e_probe report <districtUuid>
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

django.setup()

from notifier import services  # noqa: E402
from notifier.report.query import ReportParams, build_report  # noqa: E402


def consent(family_uuid: str) -> dict[str, Any]:
    """The family withdraws its consent, then asks again for the same (which writes nothing)."""
    row = services.update_family_notification_policy(family_uuid, {"approvalOfNotification": False})
    services.update_family_notification_policy(family_uuid, {"approvalOfNotification": False})
    return {"family_id": row.family_id, "approval": row.approval_of_sms, "language": row.language_of_sms}


def report(district_uuid: str) -> dict[str, Any]:
    params = ReportParams.from_query({"districtUuid": district_uuid, "mode": "0"})
    return {"area": params.area_label, "rows": [row.as_dict() for row in build_report(params)]}


if __name__ == "__main__":
    action, argument = sys.argv[1:]
    print(json.dumps({"consent": consent, "report": report}[action](argument), default=str))
