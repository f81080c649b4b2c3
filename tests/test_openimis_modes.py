"""The mode switch in one process (standalone tests): router decisions, table names, default language, UUIDs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from notifier import services
from notifier.models import Family, FamilyNotification, Language
from notifier.openimis.mode import OpenIMISRouter, openimis_table, quoted_openimis_table


def test_the_router_keeps_migrations_off_openimis_tables_only_when_attached(settings: Any) -> None:
    router = OpenIMISRouter()
    assert router.allow_migrate("default", "openimis", model_name="policy") is None
    settings.OPENIMIS_MODE = "attached"
    assert router.allow_migrate("default", "openimis", model_name="policy") is False
    assert router.allow_migrate("default", "notifier", model_name="family") is False  # before the move (0001)
    assert router.allow_migrate("default", "notifier", openimis=True) is False  # the languages data migration
    assert router.allow_migrate("default", "notifier", model_name="outbox") is None
    assert router.allow_migrate("default", "auth", model_name="user") is None


def test_openimis_tables_are_schema_qualified_when_attached(settings: Any) -> None:
    assert (openimis_table("tblPolicy"), quoted_openimis_table("tblPolicy")) == ("tblPolicy", '"tblPolicy"')
    settings.OPENIMIS_MODE = "attached"
    settings.OPENIMIS_DB_SCHEMA = "imis"
    assert openimis_table("tblPolicy") == 'imis"."tblPolicy'
    assert quoted_openimis_table("tblPolicy") == '"imis"."tblPolicy"'


@pytest.mark.django_db
def test_the_default_consent_language_is_the_setting_else_the_first_by_sort_order_nulls_last(settings: Any) -> None:
    Language.objects.create(code="aa", name="Afar", sort_order=None)
    Language.objects.filter(code="en").update(sort_order=None)
    settings.NOTIFIER_DEFAULT_LANGUAGE = ""
    assert services.default_language_code() == "fr"  # fr 2, sw 3, then NULLs: aa, en
    assert list(Language.objects.values_list("code", flat=True)) == ["fr", "sw", "aa", "en"]
    settings.NOTIFIER_DEFAULT_LANGUAGE = "sw"
    assert services.default_language_code() == "sw"


@pytest.mark.django_db
def test_consent_services_find_a_family_by_uuid_in_any_case(make_family: Callable[..., Family]) -> None:
    family = make_family(consent={"approvalOfNotification": False, "languageOfNotification": "en"})
    assert family.uuid == family.uuid.lower() and len(family.uuid) == 36

    services.update_family_notification_policy(family.uuid.upper(), {"approvalOfNotification": True})

    assert FamilyNotification.objects.filter(family=family).values_list("approval_of_sms", "validity_to").get() == (
        True,
        None,
    )
    with pytest.raises(ValidationError) as error:
        services.update_family_notification_policy("not-a-uuid", {})
    assert error.value.message_dict == {"family_uuid": ["not a valid UUID: 'not-a-uuid'"]}


@pytest.mark.django_db
def test_the_family_service_refuses_when_attached(settings: Any, make_family: Callable[..., Family]) -> None:
    family = make_family()
    settings.OPENIMIS_MODE = "attached"
    with pytest.raises(ValidationError) as error:
        services.delete_family(family.uuid)
    assert list(error.value.message_dict) == ["OPENIMIS_MODE"]
    assert Family.objects.get(pk=family.pk).validity_to is None
