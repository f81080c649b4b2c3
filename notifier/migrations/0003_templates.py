"""Shipped default templates: six types in English, French and Swahili, written for this service.

Plain GSM-7 (French uses only é, è, à, ù and straight apostrophes; no ç, ê, â, ô, which would force UCS-2), one
segment with realistic values and at most two with long ones. A row an operator has edited (edited=True) is
never touched; an unedited one is brought up to these texts.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import migrations

TEMPLATES = {
    "activation_of_policy": {
        "en": "Dear {Name}, your {ProductName} policy ({InsuranceID}) is now active. Cover runs from {EffectiveDate} to {ExpiryDate}.",
        "fr": "Bonjour {Name}, votre police {ProductName} ({InsuranceID}) est active. Couverture du {EffectiveDate} au {ExpiryDate}.",
        "sw": "Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) imeanza kutumika. Inatumika kuanzia {EffectiveDate} hadi {ExpiryDate}.",
    },
    "starting_of_policy": {
        "en": "Dear {Name}, your {ProductName} cover ({InsuranceID}) starts today, {EffectiveDate}, and runs until {ExpiryDate}.",
        "fr": "Bonjour {Name}, votre couverture {ProductName} ({InsuranceID}) commence aujourd'hui, le {EffectiveDate}, jusqu'au {ExpiryDate}.",
        "sw": "Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) inaanza kutumika leo, {EffectiveDate}, hadi {ExpiryDate}.",
    },
    "need_for_renewal": {
        "en": "Dear {Name}, your {ProductName} policy ({InsuranceID}) expires on {ExpiryDate}. Please renew it in time to stay covered.",
        "fr": "Bonjour {Name}, votre police {ProductName} ({InsuranceID}) expire le {ExpiryDate}. Renouvelez-la à temps pour rester couvert.",
        "sw": "Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) itaisha tarehe {ExpiryDate}. Tafadhali ihuishe mapema ili uendelee kutibiwa.",
    },
    "expiration_of_policy": {
        "en": "Dear {Name}, your {ProductName} policy ({InsuranceID}) expired today, {ExpiryDate}. Renew it now to be covered again.",
        "fr": "Bonjour {Name}, votre police {ProductName} ({InsuranceID}) a expiré aujourd'hui, le {ExpiryDate}. Renouvelez-la pour retrouver votre couverture.",
        "sw": "Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) imeisha leo, {ExpiryDate}. Ihuishe sasa ili uweze kutibiwa tena.",
    },
    "reminder_after_expiration": {
        "en": "Dear {Name}, your {ProductName} policy ({InsuranceID}) expired on {ExpiryDate} and is not renewed yet. Renew it to be covered again.",
        "fr": "Bonjour {Name}, votre police {ProductName} ({InsuranceID}) a expiré le {ExpiryDate} sans renouvellement. Renouvelez-la pour retrouver votre couverture.",
        "sw": "Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) iliisha tarehe {ExpiryDate} na bado haijahuishwa. Ihuishe ili uweze kutibiwa tena.",
    },
    "renewal_of_policy": {
        "en": "Dear {Name}, your {ProductName} policy ({InsuranceID}) has been renewed. You are covered until {ExpiryDate}. Thank you.",
        "fr": "Bonjour {Name}, votre police {ProductName} ({InsuranceID}) a été renouvelée. Vous restez couvert jusqu'au {ExpiryDate}. Merci.",
        "sw": "Ndugu {Name}, bima yako ya {ProductName} ({InsuranceID}) imehuishwa. Inatumika hadi {ExpiryDate}. Asante.",
    },
}


def ship_templates(apps: Any, schema_editor: Any) -> None:
    try:
        Language = apps.get_model("notifier", "Language")
    except LookupError:  # called with the current apps: the model has moved to the app `openimis`
        Language = apps.get_model("openimis", "Language")
    NotificationTemplate = apps.get_model("notifier", "NotificationTemplate")
    if getattr(settings, "OPENIMIS_MODE", "standalone") == "attached":
        # tblLanguages is openIMIS's (and not on this connection's search path): templates may exist for
        # languages it lacks, so ship all three.
        languages = {"en", "fr", "sw"}
    else:
        languages = set(Language.objects.filter(code__in=["en", "fr", "sw"]).values_list("code", flat=True))
    for notification_type, texts in TEMPLATES.items():
        for language, text in texts.items():
            if language not in languages:
                continue  # an operator removed the language; do not bring it back
            template = (
                NotificationTemplate.objects.filter(notification_type=notification_type, language_id=language)
                .order_by("pk")
                .first()
            )  # not the model's ordering, which joins tblLanguages
            if template is None:
                NotificationTemplate.objects.create(
                    notification_type=notification_type, language_id=language, text=text
                )
            elif not template.edited and template.text != text:
                template.text = text
                template.save(update_fields=["text", "updated_at"])


def unship_templates(apps: Any, schema_editor: Any) -> None:
    NotificationTemplate = apps.get_model("notifier", "NotificationTemplate")
    for notification_type, texts in TEMPLATES.items():
        for language, text in texts.items():
            NotificationTemplate.objects.filter(
                notification_type=notification_type, language_id=language, text=text, edited=False
            ).delete()


class Migration(migrations.Migration):
    dependencies = [("notifier", "0002_languages")]

    operations = [migrations.RunPython(ship_templates, unship_templates)]
