"""The report's permission anchor (no table) and its rights: one permission per configured right code
(`family_policy_notification_report_perms`, default ["131224"]) and a "Report viewer" group holding them all.

Codes added to the config later are created by `manage.py report_permissions`.
"""

from typing import Any

from django.conf import settings
from django.db import migrations, models

REPORT_GROUP = "Report viewer"


def _codes() -> list[str]:
    notifier_config: dict[str, Any] = getattr(settings, "NOTIFIER", {}) or {}
    return [str(code) for code in notifier_config.get("family_policy_notification_report_perms", ["131224"])]


def create_report_rights(apps: Any, schema_editor: Any) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="notifier", model="notificationreport")
    group, _ = Group.objects.get_or_create(name=REPORT_GROUP)
    for code in _codes():
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type,
            codename=f"report_right_{code}",
            defaults={"name": f"Can generate the family policy notification report (right {code})"},
        )
        group.permissions.add(permission)


def remove_report_rights(apps: Any, schema_editor: Any) -> None:
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name=REPORT_GROUP).delete()
    Permission.objects.filter(content_type__app_label="notifier", codename__startswith="report_right_").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifier", "0004_detection"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="NotificationReport",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "verbose_name": "family policy notification report",
                "verbose_name_plural": "family policy notification report",
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.RunPython(create_report_rights, remove_report_rights),
    ]
