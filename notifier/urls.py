from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from notifier import views

app_name = "notifier"

urlpatterns: list[URLPattern | URLResolver] = [
    path("test_sms/", views.test_sms, name="test_sms"),
]
