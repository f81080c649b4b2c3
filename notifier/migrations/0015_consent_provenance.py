"""Consent provenance (issue 14): who or what changed a family's consent; the `opted_out` skip reason."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notifier", "0014_receipts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="decision",
            name="reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "—"),
                    ("no_consent", "No consent"),
                    ("opted_out", "Opted out (the family sent STOP)"),
                    ("no_valid_phone", "No valid phone"),
                    ("type_disabled", "Type disabled"),
                    ("superseded_by_starting", "Superseded by starting"),
                    ("too_late", "Event date left the due window"),
                ],
                default="",
                max_length=32,
            ),
        ),
        migrations.CreateModel(
            name="ConsentChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("changed_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("admin", "Admin user"),
                            ("inbound_sms", "Inbound SMS"),
                            ("service_api", "Service API"),
                            ("family_service", "Family service"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("created", "Created"),
                            ("updated", "Updated"),
                            ("withdrawn", "Withdrawn (opt-out)"),
                            ("retired", "Retired (family deleted)"),
                        ],
                        max_length=10,
                    ),
                ),
                ("approval", models.BooleanField(help_text="Approval of SMS after the change.")),
                ("language", models.CharField(blank=True, help_text="Language of SMS after the change.", max_length=5)),
                (
                    "phone",
                    models.CharField(blank=True, help_text="The number an inbound SMS came from.", max_length=20),
                ),
                ("text", models.CharField(blank=True, help_text="The inbound SMS as received.", max_length=500)),
                (
                    "detail",
                    models.CharField(
                        blank=True, help_text="E.g. the provider account of an inbound SMS.", max_length=200
                    ),
                ),
                (
                    "family",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="openimis.family",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        help_text="The admin user, if any.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "notifier_consent_change",
                "ordering": ["-changed_at", "-id"],
                "indexes": [models.Index(fields=["family", "changed_at"], name="consent_change_family_idx")],
            },
        ),
    ]
