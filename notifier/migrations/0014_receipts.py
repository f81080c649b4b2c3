"""Delivery receipts (issue 14): delivered / undelivered statuses with the gateway's status, reason and time; a
secret token per provider account for its receipt and inbound URLs (each existing account gets its own)."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import migrations, models

import notifier.models


def give_each_account_a_token(apps: Any, schema_editor: Any) -> None:
    ProviderAccount = apps.get_model("notifier", "ProviderAccount")
    for account in ProviderAccount.objects.filter(callback_token__isnull=True):
        account.callback_token = secrets.token_urlsafe(24)
        account.save(update_fields=["callback_token"])


class Migration(migrations.Migration):
    dependencies = [("notifier", "0013_api_token")]

    operations = [
        migrations.AddField(
            model_name="outbox",
            name="receipt_at",
            field=models.DateTimeField(blank=True, help_text="When the last delivery receipt arrived.", null=True),
        ),
        migrations.AddField(
            model_name="outbox",
            name="receipt_reason",
            field=models.CharField(blank=True, help_text="The gateway's reason, when not delivered.", max_length=300),
        ),
        migrations.AddField(
            model_name="outbox",
            name="receipt_status",
            field=models.CharField(
                blank=True, help_text="The gateway's status word in its last delivery receipt.", max_length=40
            ),
        ),
        migrations.AlterField(
            model_name="outbox",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("sending", "Sending"),
                    ("sent", "Sent"),
                    ("failed", "Failed"),
                    ("unknown", "Outcome unknown"),
                    ("cancelled", "Cancelled"),
                    ("delivered", "Delivered (receipt)"),
                    ("undelivered", "Not delivered (receipt)"),
                ],
                default="pending",
                max_length=12,
            ),
        ),
        migrations.AddIndex(
            model_name="outbox",
            index=models.Index(fields=["provider_account", "provider_reference"], name="outbox_provider_ref_idx"),
        ),
        # Nullable first, filled per row, then unique: a callable default would give every existing row one value.
        migrations.AddField(
            model_name="provideraccount",
            name="callback_token",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.RunPython(give_each_account_a_token, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="provideraccount",
            name="callback_token",
            field=models.CharField(
                default=notifier.models.new_callback_token,
                help_text="Secret part of this account's delivery-receipt and inbound-message URLs; change it to "
                "revoke them.",
                max_length=64,
                unique=True,
            ),
        ),
    ]
