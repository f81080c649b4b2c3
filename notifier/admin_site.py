"""The admin site of the service: its name in the header, the models grouped in the sections an operator thinks
in (not by Django app), and the dashboard as the landing page."""

from __future__ import annotations

from typing import Any

from celery.result import EagerResult
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse

from notifier.dashboard import dashboard_context
from notifier.delivery import operator
from notifier.operator_tasks import refresh_forecast

# Section title → model class names (object_name), in the order shown. Grouped by model name rather than app, so
# a model moving between apps keeps its place. Models not listed go to "Other".
SECTIONS: list[tuple[str, str, list[str]]] = [
    ("consent", "Consent & families", ["Family", "FamilyNotification", "Insuree"]),
    ("messages", "Messages & templates", ["NotificationTemplate", "Language"]),
    ("delivery", "Delivery", ["Outbox", "DeliveryAttempt", "ProviderAccount", "FakeGatewayMessage"]),
    (
        "schedule",
        "Schedule",
        [
            "DispatcherRun",
            "DetectionRun",
            "Decision",
            "PeriodicTask",
            "CrontabSchedule",
            "IntervalSchedule",
            "ClockedSchedule",
            "SolarSchedule",
        ],
    ),
    ("openimis", "openIMIS data", ["Location", "Officer", "Product", "Policy", "FamilySMS"]),
    ("reports", "Reports", ["NotificationReport", "ReportFile"]),
    ("access", "Users & access", ["User", "Group"]),
]


class NotifierAdminSite(admin.AdminSite):
    site_header = "Policy notifier"
    site_title = "Policy notifier"
    index_title = "Dashboard"
    index_template = "admin/notifier/dashboard.html"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        if app_label is not None:  # an app's own page keeps Django's grouping
            return apps
        models = {model["object_name"]: model for app in apps for model in app["models"]}
        index = reverse("admin:index", current_app=self.name)
        sections: list[dict[str, Any]] = []
        placed: set[str] = set()
        for slug, title, names in SECTIONS:
            members = [models[name] for name in names if name in models]
            placed.update(model["object_name"] for model in members)
            if members:
                sections.append(self._section(slug, title, members, index))
        rest = [model for name, model in models.items() if name not in placed]
        if rest:
            sections.append(self._section("other", "Other", rest, index))
        return sections

    @staticmethod
    def _section(slug: str, title: str, members: list[dict[str, Any]], index: str) -> dict[str, Any]:
        return {
            "name": title,
            "app_label": slug,
            "app_url": f"{index}#section-{slug}",
            "has_module_perms": True,
            "models": members,
        }

    def get_urls(self) -> list[URLResolver | URLPattern]:
        own = [
            path(
                "dashboard/outbox/<int:outbox_id>/",
                self.admin_view(self.outbox_action_view),
                name="notifier_dashboard_outbox",
            ),
            path("dashboard/forecast/", self.admin_view(self.forecast_view), name="notifier_dashboard_forecast"),
        ]
        return own + super().get_urls()

    def outbox_action_view(self, request: HttpRequest, outbox_id: int) -> HttpResponse:
        """The dashboard's one-click resend / cancel of a failed or unknown message."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("notifier.change_outbox"):
            raise PermissionDenied
        action = request.POST.get("action", "")
        if action == "resend":
            done = operator.resend([outbox_id])
            text = f"Message #{outbox_id} queued again; the sweeper sends it shortly." if done else ""
        elif action == "cancel":
            done = operator.cancel([outbox_id])
            text = f"Message #{outbox_id} cancelled." if done else ""
        else:
            messages.error(request, f"action: unknown action {action!r}; expected resend or cancel")
            return redirect("admin:index")
        if done:
            messages.success(request, text)
        else:
            messages.warning(request, f"Message #{outbox_id} was not changed: it is no longer failed or unknown.")
        return redirect("admin:index")

    def forecast_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.is_staff:
            raise PermissionDenied
        result = refresh_forecast.delay()
        if isinstance(result, EagerResult):  # embedded mode: it ran in this request
            messages.success(request, "Forecast recomputed.")
        else:
            messages.info(request, "The forecast is being recomputed by a worker; reload this page in a minute.")
        return redirect("admin:index")

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        context = {**(extra_context or {}), **dashboard_context(request)}
        return super().index(request, context)  # type: ignore[return-value]
