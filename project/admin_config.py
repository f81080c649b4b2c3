"""The admin app with this service's own site (title, sections an operator understands, the dashboard)."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class NotifierAdminConfig(AdminConfig):
    default_site = "notifier.admin_site.NotifierAdminSite"
