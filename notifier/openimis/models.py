"""openIMIS mirror models: the same tables and columns as openIMIS's PostgreSQL schema (SPEC §2, §14).

Column types follow `00_schema.sql`: UUIDs are varchar(36) (compare them with `uuid__iexact`: rows migrated from
SQL Server may carry upper case), and a column is nullable where openIMIS allows NULL. Attached, the tables are
read schema-qualified in `OPENIMIS_DB_SCHEMA` and never written, except tblFamilySMS (notifier.openimis.consent).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from notifier.openimis.mode import openimis_table

_V = TypeVar("_V", bound=models.Model)


def new_uuid() -> str:
    """A new openIMIS UUID as openIMIS writes it: lower case with dashes, in a varchar(36)."""
    return str(uuid.uuid4())


def uuid_field(column: str) -> models.CharField[str, str]:
    return models.CharField(db_column=column, max_length=36, default=new_uuid, db_index=True)


class VersionedQuerySet(models.QuerySet[_V]):
    def current(self) -> VersionedQuerySet[_V]:
        """openIMIS keeps history in the same table: the current row is the one with ValidityTo IS NULL."""
        return self.filter(validity_to__isnull=True)

    def with_uuid(self, key: str) -> VersionedQuerySet[_V]:
        """Rows whose UUID equals `key` ignoring case. openIMIS writes lower case, rows migrated from SQL Server
        carry upper case: those two are looked up by equality (an index on the column serves it); only when
        neither matches does it compare case-insensitively (UPPER(), a scan)."""
        exact = self.filter(uuid__in=sorted({key.lower(), key.upper()}))
        if exact.exists():
            return exact
        return self.filter(uuid__iexact=key)


class VersionedModel(models.Model):
    """A row versioned the openIMIS way: history rows carry ValidityTo and LegacyID = the current row's id."""

    validity_from = models.DateTimeField(db_column="ValidityFrom", default=timezone.now)
    validity_to = models.DateTimeField(db_column="ValidityTo", null=True, blank=True)
    legacy_id = models.IntegerField(db_column="LegacyID", null=True, blank=True)

    objects = VersionedQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_current(self) -> bool:
        return self.validity_to is None

    def save_history(self, at: datetime | None = None) -> None:
        """Copy the stored values into a history row, then stamp this (current) row as valid from `at`.

        Call before saving new values on a current row; the caller saves the row afterwards. Standalone only:
        attached, openIMIS owns these rows.
        """
        at = at or timezone.now()
        with transaction.atomic():
            stored = type(self).objects.select_for_update().get(pk=self.pk)
            stored.pk = None
            stored._state.adding = True
            stored.validity_to = at
            stored.legacy_id = self.pk
            stored.save(force_insert=True)
            self.validity_from = at

    def retire(self, at: datetime | None = None) -> None:
        """openIMIS deletes by closing the current row's validity."""
        self.validity_to = at or timezone.now()
        self.save(update_fields=["validity_to"])


class Location(VersionedModel):
    class Type(models.TextChoices):
        REGION = "R", "Region"
        DISTRICT = "D", "District"
        WARD = "W", "Ward / municipality"
        VILLAGE = "V", "Village"

    id = models.AutoField(db_column="LocationId", primary_key=True)
    uuid = uuid_field("LocationUUID")
    code = models.CharField(db_column="LocationCode", max_length=8, null=True, blank=True)
    name = models.CharField(db_column="LocationName", max_length=50, null=True, blank=True)
    type = models.CharField(db_column="LocationType", max_length=1, choices=Type.choices)
    parent = models.ForeignKey(
        "self", models.DO_NOTHING, db_column="ParentLocationId", null=True, blank=True, related_name="children"
    )

    class Meta:
        db_table = openimis_table("tblLocations")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code or ''} {self.name or ''}".strip() or f"Location {self.id}"


class Officer(VersionedModel):
    id = models.AutoField(db_column="OfficerID", primary_key=True)
    uuid = uuid_field("OfficerUUID")
    code = models.CharField(db_column="Code", max_length=8)
    last_name = models.CharField(db_column="LastName", max_length=100)
    other_names = models.CharField(db_column="OtherNames", max_length=100)
    phone = models.CharField(db_column="Phone", max_length=50, null=True, blank=True)
    location = models.ForeignKey(Location, models.DO_NOTHING, db_column="LocationId", null=True, blank=True)

    class Meta:
        db_table = openimis_table("tblOfficer")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.other_names} {self.last_name}"


class Product(VersionedModel):
    id = models.AutoField(db_column="ProdID", primary_key=True)
    uuid = uuid_field("ProdUUID")
    code = models.CharField(db_column="ProductCode", max_length=8)
    name = models.CharField(db_column="ProductName", max_length=100)
    conversion_product = models.ForeignKey(
        "self", models.DO_NOTHING, db_column="ConversionProdID", null=True, blank=True, related_name="+"
    )
    # What a policy of the product costs ({AmountToBePaid}; openIMIS policy values): openIMIS's columns and types.
    # Database defaults too: rows written without the ORM (bench/generate.py's COPY) stay valid.
    lump_sum = models.DecimalField(db_column="LumpSum", max_digits=18, decimal_places=2, default=0, db_default=0)
    max_members = models.SmallIntegerField(db_column="MemberCount", default=0, db_default=0)
    premium_adult = models.DecimalField(
        db_column="PremiumAdult", max_digits=18, decimal_places=2, null=True, blank=True
    )
    premium_child = models.DecimalField(
        db_column="PremiumChild", max_digits=18, decimal_places=2, null=True, blank=True
    )
    threshold = models.IntegerField(db_column="Threshold", null=True, blank=True)
    renewal_discount_perc = models.IntegerField(db_column="RenewalDiscountPerc", null=True, blank=True)
    renewal_discount_period = models.IntegerField(db_column="RenewalDiscountPeriod", null=True, blank=True)
    general_assembly_fee = models.DecimalField(
        db_column="GeneralAssemblyFee", max_digits=18, decimal_places=2, null=True, blank=True
    )
    general_assembly_lump_sum = models.DecimalField(
        db_column="GeneralAssemblyLumpSum", max_digits=18, decimal_places=2, null=True, blank=True
    )
    registration_fee = models.DecimalField(
        db_column="RegistrationFee", max_digits=18, decimal_places=2, null=True, blank=True
    )
    registration_lump_sum = models.DecimalField(
        db_column="RegistrationLumpSum", max_digits=18, decimal_places=2, null=True, blank=True
    )

    class Meta:
        db_table = openimis_table("tblProduct")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Family(VersionedModel):
    id = models.AutoField(db_column="FamilyID", primary_key=True)
    uuid = uuid_field("FamilyUUID")
    head_insuree = models.ForeignKey(
        "Insuree", models.DO_NOTHING, db_column="InsureeID", null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(Location, models.DO_NOTHING, db_column="LocationId", null=True, blank=True)

    class Meta:
        db_table = openimis_table("tblFamilies")
        verbose_name_plural = "families"

    def __str__(self) -> str:
        head = self.head_insuree
        return f"Family {self.id} ({head.chf_id or ''} {head.last_name})" if head else f"Family {self.id}"


class Insuree(VersionedModel):
    id = models.AutoField(db_column="InsureeID", primary_key=True)
    uuid = uuid_field("InsureeUUID")
    chf_id = models.CharField(db_column="CHFID", max_length=12, null=True, blank=True)
    last_name = models.CharField(db_column="LastName", max_length=100)
    other_names = models.CharField(db_column="OtherNames", max_length=100)
    family = models.ForeignKey(
        Family, models.DO_NOTHING, db_column="FamilyID", null=True, blank=True, related_name="members"
    )
    head = models.BooleanField(db_column="IsHead", default=False)
    phone = models.CharField(db_column="Phone", max_length=50, null=True, blank=True)
    dob = models.DateField(db_column="DOB", null=True, blank=True)
    # tblRelations id (7: "other", not family): decides who counts as a member for a policy's value.
    relationship = models.SmallIntegerField(db_column="Relationship", null=True, blank=True)

    class Meta:
        db_table = openimis_table("tblInsuree")
        indexes = [models.Index(fields=["chf_id"], name="insuree_chfid_idx")]

    def __str__(self) -> str:
        return f"{self.chf_id or ''} {self.other_names} {self.last_name}".strip()


class Policy(VersionedModel):
    class Stage(models.TextChoices):
        NEW = "N", "New"
        RENEWAL = "R", "Renewal"

    class Status(models.IntegerChoices):
        IDLE = 1, "Idle"
        ACTIVE = 2, "Active"
        SUSPENDED = 4, "Suspended"
        EXPIRED = 8, "Expired"
        READY = 16, "Ready"

    id = models.AutoField(db_column="PolicyID", primary_key=True)
    uuid = uuid_field("PolicyUUID")
    stage = models.CharField(
        db_column="PolicyStage", max_length=1, choices=Stage.choices, default=Stage.NEW, null=True, blank=True
    )
    status = models.SmallIntegerField(
        db_column="PolicyStatus", choices=Status.choices, default=Status.IDLE, null=True, blank=True
    )
    enroll_date = models.DateField(db_column="EnrollDate")
    start_date = models.DateField(db_column="StartDate")
    effective_date = models.DateField(db_column="EffectiveDate", null=True, blank=True)
    expiry_date = models.DateField(db_column="ExpiryDate", null=True, blank=True)
    family = models.ForeignKey(Family, models.DO_NOTHING, db_column="FamilyID", related_name="policies")
    officer = models.ForeignKey(Officer, models.DO_NOTHING, db_column="OfficerID", null=True, blank=True)
    product = models.ForeignKey(Product, models.DO_NOTHING, db_column="ProdID", related_name="policies")
    value = models.DecimalField(db_column="PolicyValue", max_digits=18, decimal_places=2, null=True, blank=True)

    class Meta:
        db_table = openimis_table("tblPolicy")
        verbose_name_plural = "policies"
        # Standalone only: attached, these are the DBA's call (SPEC §14).
        indexes = [
            models.Index(fields=["expiry_date"], name="policy_expiry_idx"),
            models.Index(fields=["effective_date"], name="policy_effective_idx"),
            models.Index(fields=["family", "product"], name="policy_family_product_idx"),
            # activation / renewal look for current rows that became valid in the due window
            models.Index(
                fields=["validity_from"], name="policy_current_from_idx", condition=models.Q(validity_to__isnull=True)
            ),
            # activation / renewal: the version before the current row (newest history row, LegacyID = its id)
            models.Index(
                fields=["legacy_id", "validity_to"],
                name="policy_history_idx",
                condition=models.Q(validity_to__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        status = self.get_status_display() if self.status is not None else "no status"
        return f"Policy {self.id} ({status}, {self.start_date} to {self.expiry_date})"


class Language(models.Model):
    code = models.CharField(db_column="LanguageCode", max_length=5, primary_key=True)
    name = models.CharField(db_column="LanguageName", max_length=50)
    sort_order = models.IntegerField(db_column="SortOrder", null=True, blank=True)

    class Meta:
        db_table = openimis_table("tblLanguages")
        ordering = [F("sort_order").asc(nulls_last=True), "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class FamilyNotification(models.Model):
    """Consent to SMS (tblFamilySMS). Read current rows only (ValidityTo IS NULL): attached, the table keeps
    history rows sharing FamilyID. Write through notifier.openimis.consent, never with save().

    The columns are those of the `camel` spelling; attached, notifier.openimis.mode points the fields at the
    spelling the database has (`familyid`, ... or `"FamilyID"`, ...) on the first connection.
    """

    family = models.OneToOneField(
        Family, models.DO_NOTHING, db_column="FamilyID", primary_key=True, related_name="notification"
    )
    approval_of_sms = models.BooleanField(db_column="ApprovalOfSMS", default=False, null=True)
    language_of_sms = models.CharField(db_column="LanguageOfSMS", max_length=5, null=True)
    validity_from = models.DateTimeField(db_column="ValidityFrom", default=timezone.now)
    validity_to = models.DateTimeField(db_column="ValidityTo", null=True, blank=True)

    class Meta:
        db_table = openimis_table("tblFamilySMS")

    def __str__(self) -> str:
        approval = "approved" if self.approval_of_sms else "no approval"
        return f"Family {self.family_id}: {approval} ({self.language_of_sms or 'no language'})"
