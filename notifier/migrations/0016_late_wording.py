"""True when late (issue 14): an optional late variant per template, used when a message goes out after its event
date. Shipped late variants for the two types whose text says "today" (starting, expiration) in en, fr and sw.

A template an operator edited (edited=True) is never touched, nor one whose late variant is already set.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

LATE_TEMPLATES = {
    "starting_of_policy": {
        "en": "Dear {Name}, your {ProductName} cover ({InsuranceID}) started on {EffectiveDate} and runs until {ExpiryDate}.",
        "fr": "Bonjour {Name}, votre couverture {ProductName} ({InsuranceID}) a commencé le {EffectiveDate}, jusqu'au {ExpiryDate}.",
        "sw": "Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) ilianza kutumika tarehe {EffectiveDate}, hadi {ExpiryDate}.",
    },
    "expiration_of_policy": {
        "en": "Dear {Name}, your {ProductName} policy ({InsuranceID}) expired on {ExpiryDate}. Renew it now to be covered again.",
        "fr": "Bonjour {Name}, votre police {ProductName} ({InsuranceID}) a expiré le {ExpiryDate}. Renouvelez-la pour retrouver votre couverture.",
        "sw": "Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) iliisha tarehe {ExpiryDate}. Ihuishe sasa ili uweze kutibiwa tena.",
    },
}


def ship_late_variants(apps: Any, schema_editor: Any) -> None:
    NotificationTemplate = apps.get_model("notifier", "NotificationTemplate")
    for notification_type, texts in LATE_TEMPLATES.items():
        for language, text in texts.items():
            NotificationTemplate.objects.filter(
                notification_type=notification_type, language_id=language, edited=False, late_text=""
            ).update(late_text=text)


def unship_late_variants(apps: Any, schema_editor: Any) -> None:
    NotificationTemplate = apps.get_model("notifier", "NotificationTemplate")
    for notification_type, texts in LATE_TEMPLATES.items():
        for language, text in texts.items():
            NotificationTemplate.objects.filter(
                notification_type=notification_type, language_id=language, late_text=text, edited=False
            ).update(late_text="")


class Migration(migrations.Migration):
    dependencies = [("notifier", "0015_consent_provenance")]

    operations = [
        migrations.AddField(
            model_name="notificationtemplate",
            name="late_text",
            field=models.TextField(
                blank=True,
                help_text="Optional: sent instead of the text when the message goes out after its event date "
                "(catch-up, retries, quiet hours), so it never says 'today' a day late. Empty: the text reads right "
                "either way.",
            ),
        ),
        migrations.RunPython(ship_late_variants, unship_late_variants),
    ]
