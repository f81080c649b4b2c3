"""What the admin pages share: one place that says which actions an admin refuses whatever the user's rights,
the openIMIS read-only rule (attached mode), and openIMIS versioning for edits."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone

from notifier.openimis.mode import is_attached

READ_ONLY = frozenset({"add", "change", "delete"})


class RefusedActionsMixin:
    """`refused` names the actions ("add", "change", "delete") this admin never allows, e.g. on rows only the
    service writes; `refuses()` is the one hook a subclass extends with a condition (attached mode, history rows).
    What is not refused is left to Django's permissions."""

    refused: frozenset[str] = frozenset()

    def refuses(self, action: str, obj: Any = None) -> bool:
        return action in self.refused

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return not self.refuses("add") and bool(super().has_add_permission(request, *args))  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self.refuses("change", obj) and bool(super().has_change_permission(request, obj))  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self.refuses("delete", obj) and bool(super().has_delete_permission(request, obj))  # type: ignore[misc]


class OpenIMISReadOnlyMixin(RefusedActionsMixin):
    """Attached to an openIMIS database (OPENIMIS_MODE=attached), openIMIS rows are shown, never added, changed
    or deleted here: openIMIS owns them."""

    def refuses(self, action: str, obj: Any = None) -> bool:
        return is_attached() or super().refuses(action, obj)


class CurrentRowsFilter(admin.SimpleListFilter):
    title = "version"
    parameter_name = "version"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("current", "Current rows"), ("history", "History rows")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "current":
            return queryset.filter(validity_to__isnull=True)
        if self.value() == "history":
            return queryset.filter(validity_to__isnull=False)
        return queryset


class VersionedAdmin(OpenIMISReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """openIMIS versioning for admin edits (SPEC §2): a change keeps the old values in a history row, a delete
    closes the row's validity, and history rows themselves are read-only. Attached: all read-only."""

    versioning_fields = ["validity_from", "validity_to", "legacy_id"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        declared = list(super().get_readonly_fields(request, obj))
        return declared + [name for name in self.versioning_fields if name not in declared]

    def refuses(self, action: str, obj: Any = None) -> bool:
        if action in {"change", "delete"} and obj is not None and obj.validity_to is not None:
            return True
        return super().refuses(action, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if change and form.has_changed():
            obj.save_history()
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        obj.retire()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queryset.filter(validity_to__isnull=True).update(validity_to=timezone.now())
