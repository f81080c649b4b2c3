from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from notifier.health import health

app_name = "notifier"

urlpatterns: list[URLPattern | URLResolver] = [
    path("health/", health, name="health"),
]
