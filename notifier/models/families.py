"""The notifier's own tables about families: the phone a family is texted on, and the provenance of consent."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from notifier.openimis.models import Family, Insuree


class FamilyPhone(models.Model):
    """The phone a family is texted on, by the sender's rule (head first, then members by id; first valid one).

    Derived from tblInsuree by notifier.phones.refresh_family_phones so that eligibility modes, detection and
    the report can filter on "has a valid phone" in SQL. A family without a row has no valid phone.
    """

    # No database constraint on references to openIMIS tables: attached, they are openIMIS's, in another schema.
    family = models.OneToOneField(
        Family, models.DO_NOTHING, primary_key=True, related_name="sms_phone", db_constraint=False
    )
    insuree = models.ForeignKey(Insuree, models.DO_NOTHING, related_name="+", db_constraint=False)
    phone = models.CharField(max_length=20, help_text="E.164")
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "notifier_family_phone"

    def __str__(self) -> str:
        return f"Family {self.family_id}: {self.phone}"


class ConsentChange(models.Model):
    """Provenance of every consent change (who or what changed tblFamilySMS, and how). The notifier's own table:
    tblFamilySMS belongs to openIMIS and gets no column. Written by the consent service (notifier.consent_log)."""

    class Source(models.TextChoices):
        ADMIN = "admin", "Admin user"
        INBOUND_SMS = "inbound_sms", "Inbound SMS"
        SERVICE_API = "service_api", "Service API"
        FAMILY_SERVICE = "family_service", "Family service"

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        WITHDRAWN = "withdrawn", "Withdrawn (opt-out)"
        RETIRED = "retired", "Retired (family deleted)"

    # No database constraint: a log of the notifier's own must never stop a family row being removed elsewhere.
    family = models.ForeignKey(Family, models.DO_NOTHING, related_name="+", db_constraint=False)
    changed_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=10, choices=Action.choices)
    approval = models.BooleanField(help_text="Approval of SMS after the change.")
    language = models.CharField(max_length=5, blank=True, help_text="Language of SMS after the change.")
    user = models.ForeignKey(
        "auth.User", models.SET_NULL, null=True, blank=True, related_name="+", help_text="The admin user, if any."
    )
    phone = models.CharField(max_length=20, blank=True, help_text="The number an inbound SMS came from.")
    text = models.CharField(max_length=500, blank=True, help_text="The inbound SMS as received.")
    detail = models.CharField(max_length=200, blank=True, help_text="E.g. the provider account of an inbound SMS.")

    class Meta:
        db_table = "notifier_consent_change"
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["family", "changed_at"], name="consent_change_family_idx")]

    def __str__(self) -> str:
        return (
            f"Family {self.family_id}: {self.action} by {self.get_source_display()} at {self.changed_at:%Y-%m-%d %H:%M}"
        )
