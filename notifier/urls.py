from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from notifier import callback_views, views
from notifier.health import health
from notifier.metrics import metrics
from notifier.report import views as report_views

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
    path("login/", report_views.ReportLoginView.as_view(), name="report_login"),
    path("logout/", report_views.report_logout, name="report_logout"),
    path("report/", report_views.report_page, name="report_page"),
    path("receipts/<str:token>/", callback_views.receipt, name="receipt"),
    path("inbound/<str:token>/", callback_views.inbound_message, name="inbound"),
    path("report_files/<uuid:key>/", report_views.report_file, name="report_file"),
    path("report_files/<uuid:key>/download/", report_views.report_file_download, name="report_file_download"),
]
