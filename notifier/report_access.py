"""Who may generate the report: the rights in `family_policy_notification_report_perms` (default ["131224"]),
each mapped to the Django permission `notifier.report_right_<code>`; a user needs all of them.

An empty list of rights lets every signed-in user through, which is what the config then says.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group, Permission, PermissionsMixin
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from notifier.conf import get_config
from notifier.models import NotificationReport

REPORT_GROUP = "Report viewer"


def report_right_codes() -> list[str]:
    return list(get_config().family_policy_notification_report_perms)


def permission_codename(code: str) -> str:
    return f"report_right_{code}"


def required_permissions() -> list[str]:
    return [f"notifier.{permission_codename(code)}" for code in report_right_codes()]


def missing_rights(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """The configured right codes `user` lacks (all of them for an anonymous or inactive user)."""
    if not isinstance(user, PermissionsMixin):
        return report_right_codes()
    return [code for code in report_right_codes() if not user.has_perm(f"notifier.{permission_codename(code)}")]


@transaction.atomic
def ensure_report_permissions() -> list[Permission]:
    """Create the permission of every configured right and put them all in the "Report viewer" group.

    The data migration does this for the config present at migrate time; run `manage.py report_permissions`
    after adding a right code to the config.
    """
    content_type = ContentType.objects.get_for_model(NotificationReport, for_concrete_model=False)
    group, _ = Group.objects.get_or_create(name=REPORT_GROUP)
    permissions = []
    for code in report_right_codes():
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type,
            codename=permission_codename(code),
            defaults={"name": f"Can generate the family policy notification report (right {code})"},
        )
        permissions.append(permission)
    group.permissions.add(*permissions)
    return permissions
