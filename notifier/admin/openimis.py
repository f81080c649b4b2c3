"""The openIMIS mirror's other tables (policies, products, locations, officers, languages): edited with openIMIS
versioning when standalone, read-only when attached."""

from __future__ import annotations

from django.contrib import admin

from notifier.admin.base import CurrentRowsFilter, OpenIMISReadOnlyMixin, VersionedAdmin
from notifier.models import Language, Location, Officer, Policy, Product


@admin.register(Policy)
class PolicyAdmin(VersionedAdmin):
    list_display = ["id", "family", "product", "stage", "status", "start_date", "effective_date", "expiry_date"]
    list_filter = ["status", "stage", "product", CurrentRowsFilter]
    search_fields = ["uuid", "family__head_insuree__chf_id", "family__head_insuree__last_name"]
    list_select_related = ["product", "family"]
    raw_id_fields = ["family", "officer", "product"]
    date_hierarchy = "expiry_date"


@admin.register(Product)
class ProductAdmin(VersionedAdmin):
    list_display = ["code", "name", "conversion_product", "validity_to"]
    list_filter = [CurrentRowsFilter]
    search_fields = ["code", "name"]


@admin.register(Location)
class LocationAdmin(VersionedAdmin):
    list_display = ["code", "name", "type", "parent", "validity_to"]
    list_filter = ["type", CurrentRowsFilter]
    search_fields = ["code", "name", "uuid"]
    raw_id_fields = ["parent"]


@admin.register(Officer)
class OfficerAdmin(VersionedAdmin):
    list_display = ["code", "other_names", "last_name", "phone", "location", "validity_to"]
    list_filter = [CurrentRowsFilter]
    search_fields = ["code", "last_name", "other_names", "uuid"]
    raw_id_fields = ["location"]


@admin.register(Language)
class LanguageAdmin(OpenIMISReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["code", "name", "sort_order"]
    search_fields = ["code", "name"]
