from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from notifier import report_views, views
from notifier.health import health
from notifier.metrics import metrics

app_name = "notifier"

urlpatterns: list[URLPattern | URLResolver] = [
    path("health/", health, name="health"),
    path("metrics/", metrics, name="metrics"),
    path(
        "communication_by_notification_report/",
        report_views.communication_by_notification_report,
        name="communication_by_notification_report",
    ),
    path("test_sms/", views.test_sms, name="test_sms"),
    path("report_files/<uuid:key>/", report_views.report_file, name="report_file"),
    path("report_files/<uuid:key>/download/", report_views.report_file_download, name="report_file_download"),
]
