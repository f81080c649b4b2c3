"""Services: the family service (mutations + after-mutation signals) and the seed's consent services.

Every service validates before it writes and runs in one transaction, so bad input raises a ValidationError
naming the field and leaves nothing half-written; a failing signal receiver rolls the whole mutation back.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Model
from django.utils import timezone

from notifier import consent_log, signals
from notifier.models import Family, FamilyNotification, Insuree, Language, Location
from notifier.openimis import consent
from notifier.openimis.mode import is_attached
from notifier.safe_input import check_text, parse_uuid
from notifier.settings import get_settings

NOTIFICATION_KEYS = {"approvalOfNotification", "languageOfNotification"}
CONTRIBUTION_KEY = "PolicyNotification"


# --- consent (seed contract) --------------------------------------------------------------------------------


def _max_length(model: type[Model], name: str) -> int | None:
    max_length = getattr(model._meta.get_field(name), "max_length", None)
    return int(max_length) if max_length is not None else None


def default_language_code() -> str:
    """NOTIFIER_DEFAULT_LANGUAGE when set, else the first openIMIS language by SortOrder (NULL last), then code."""
    configured = get_settings().default_language.strip()
    if configured:
        return configured
    first = (
        Language.objects.order_by(F("sort_order").asc(nulls_last=True), "code").values_list("code", flat=True).first()
    )
    return first or "en"


class OpenIMISReadOnly(ValidationError):
    """Attached to an openIMIS database, families and insurees are openIMIS's: the family service is off."""

    def __init__(self, what: str) -> None:
        super().__init__(
            {
                "OPENIMIS_MODE": f"attached: {what} belongs to openIMIS; change it in openIMIS "
                "(the notifier writes only consent, tblFamilySMS)"
            }
        )


def _refuse_when_attached(what: str) -> None:
    if is_attached():
        raise OpenIMISReadOnly(what)


def _shown(value: Any) -> str:
    """A value as an error message may quote it: short, and safe for any input (a 100,000-deep dict has no repr)."""
    if value is None or isinstance(value, bool | int | float | str | dt.date | uuid_module.UUID):
        return _printable(repr(value))
    return f"a {type(value).__name__}"


def _printable(key: str) -> str:
    """A key as it can be shown in an error (a NUL or a 100 kB key is shown escaped and cut)."""
    shown = key.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _uuid_text(value: Any, field: str) -> str:
    """A UUID parameter (a UUID or its text) as openIMIS stores it, varchar(36): compare with iexact, rows may be
    upper case. Anything else is a ValidationError naming `field`."""
    key = parse_uuid(value)
    if key is None:
        raise ValidationError({field: f"not a valid UUID: {_shown(value)}"})
    return str(key)


def _current_family(family_uuid: Any) -> Family:
    key = _uuid_text(family_uuid, "family_uuid")
    family = Family.objects.current().with_uuid(key).first()
    if family is None:
        raise ValidationError({"family_uuid": f"no current family with uuid {key}"})
    return family


def _clean_notification_data(notification_data: Any, *, partial: bool) -> dict[str, Any]:
    if notification_data is None:
        notification_data = {}
    if not isinstance(notification_data, Mapping):
        raise ValidationError({"notification_data": "must be a dict"})
    unknown = sorted(str(key) for key in notification_data if key not in NOTIFICATION_KEYS)
    if unknown:
        raise ValidationError({_printable(key): "unknown key" for key in unknown})
    cleaned: dict[str, Any] = {}
    if "approvalOfNotification" in notification_data:
        approval = notification_data["approvalOfNotification"]
        if not isinstance(approval, bool):
            raise ValidationError({"approvalOfNotification": f"must be true or false, got {_shown(approval)}"})
        cleaned["approval_of_sms"] = approval
    elif not partial:
        cleaned["approval_of_sms"] = False
    if "languageOfNotification" in notification_data:
        language = notification_data["languageOfNotification"]
        if isinstance(language, str):
            check_text("languageOfNotification", language, _max_length(Language, "code"))
        if not isinstance(language, str) or not Language.objects.filter(code=language).exists():
            raise ValidationError({"languageOfNotification": f"unknown language code {_shown(language)}"})
        cleaned["language_of_sms"] = language
    elif not partial:
        cleaned["language_of_sms"] = default_language_code()
    return cleaned


@transaction.atomic
def create_family_notification_policy(family_uuid: Any, notification_data: Any = None) -> FamilyNotification:
    """Create the consent row of a family (defaults: no approval, the default language)."""
    family = _current_family(family_uuid)
    cleaned = _clean_notification_data(notification_data, partial=False)
    if consent.current_consent(family.id, lock=True) is not None:
        raise ValidationError({"family_uuid": f"family {family.uuid} already has a notification policy"})
    created = consent.set_consent(family.id, approval=cleaned["approval_of_sms"], language=cleaned["language_of_sms"])
    _log_consent(created, consent_log.Action.CREATED)
    return created


@transaction.atomic
def update_family_notification_policy(family_uuid: Any, notification_data: Any = None) -> FamilyNotification:
    """Change the given keys of a family's consent; a family without a row gets one (defaults + the keys).

    Attached to a tblFamilySMS with history, the current row is closed and a new one inserted (openIMIS's way).
    """
    family = _current_family(family_uuid)
    cleaned = _clean_notification_data(notification_data, partial=True)
    existing = consent.current_consent(family.id, lock=True)
    if existing is None:
        return create_family_notification_policy(family.uuid, notification_data)
    merged = {"approval_of_sms": existing.approval_of_sms, "language_of_sms": existing.language_of_sms, **cleaned}
    if all(getattr(existing, name) == value for name, value in merged.items()):
        return existing
    withdrawn = bool(existing.approval_of_sms) and not merged["approval_of_sms"]
    changed = consent.set_consent(family.id, approval=merged["approval_of_sms"], language=merged["language_of_sms"])
    _log_consent(changed, consent_log.Action.WITHDRAWN if withdrawn else consent_log.Action.UPDATED)
    return changed


@transaction.atomic
def delete_family_notification_policy(family_uuid: Any, notification_data: Any = None) -> None:
    """Retire a family's consent: no message goes out to it afterwards. Works on a just-deleted family too."""
    key = _uuid_text(family_uuid, "family_uuid")
    _clean_notification_data(notification_data, partial=True)
    family_ids = Family.objects.filter(legacy_id__isnull=True).with_uuid(key).values_list("id", flat=True)
    if not family_ids:
        raise ValidationError({"family_uuid": f"no family with uuid {key}"})
    retiring = [row for family_id in family_ids if (row := consent.current_consent(family_id, lock=True)) is not None]
    consent.retire_consent(family_ids)
    for row in retiring:
        consent_log.record(
            row.family_id, action=consent_log.Action.RETIRED, approval=False, language=row.language_of_sms or ""
        )


def _log_consent(row: FamilyNotification, action: str) -> None:
    """Provenance of a consent change (notifier.consent_log), in the same transaction as the change."""
    consent_log.record(
        row.family_id, action=action, approval=bool(row.approval_of_sms), language=row.language_of_sms or ""
    )


# --- the family service -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberData:
    chf_id: str
    last_name: str
    other_names: str
    phone: str | None = None
    dob: dt.date | None = None
    head: bool = False


def _clean_member(member: MemberData, prefix: str) -> None:
    if not isinstance(member.chf_id, str) or not member.chf_id or len(member.chf_id) > 12:
        raise ValidationError({f"{prefix}chf_id": "required text, at most 12 characters"})
    if not isinstance(member.last_name, str) or not member.last_name:
        raise ValidationError({f"{prefix}last_name": "required text"})
    if not isinstance(member.other_names, str) or not member.other_names:
        raise ValidationError({f"{prefix}other_names": "required text"})
    if member.phone is not None and (not isinstance(member.phone, str) or len(member.phone) > 50):
        raise ValidationError({f"{prefix}phone": "text of at most 50 characters, or null"})
    # What PostgreSQL would refuse with a DataError (NUL, invalid Unicode, longer than the column), named here.
    for name in ("chf_id", "last_name", "other_names", "phone"):
        check_text(f"{prefix}{name}", getattr(member, name), _max_length(Insuree, name))
    # datetime is a subclass of date; a DateField would silently drop its time
    if member.dob is not None and (not isinstance(member.dob, dt.date) or isinstance(member.dob, dt.datetime)):
        raise ValidationError({f"{prefix}dob": f"must be a date or null, got {_shown(member.dob)}"})


def _clean_contributions(contributions: Any) -> dict[str, Any]:
    if contributions is None:
        return {}
    if not isinstance(contributions, Mapping):
        raise ValidationError({"contributions": "must be a dict keyed by module name"})
    return dict(contributions)


def _clean_location(location: Location | None) -> None:
    if location is not None and (location.type != Location.Type.VILLAGE or location.validity_to is not None):
        raise ValidationError({"location": "must be a current village (LocationType V)"})


@transaction.atomic
def create_family(
    members: Sequence[MemberData],
    *,
    location: Location | None = None,
    contributions: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> Family:
    """Create a family with its members (exactly one head) and send `family_created`. Standalone only."""
    _refuse_when_attached("a family")
    cleaned_contributions = _clean_contributions(contributions)
    if not members:
        raise ValidationError({"members": "a family needs at least its head"})
    heads = [m for m in members if m.head]
    if len(heads) != 1:
        raise ValidationError({"members": f"exactly one member must be the head, got {len(heads)}"})
    for index, member in enumerate(members):
        _clean_member(member, f"members[{index}].")
    _clean_location(location)
    at = at or timezone.now()
    family = Family.objects.create(location=location, validity_from=at)
    created = Insuree.objects.bulk_create(
        [
            Insuree(
                chf_id=m.chf_id,
                last_name=m.last_name,
                other_names=m.other_names,
                phone=m.phone,
                dob=m.dob,
                head=m.head,
                family=family,
                validity_from=at,
            )
            for m in members
        ]
    )
    family.head_insuree = next(i for i in created if i.head)
    family.save(update_fields=["head_insuree"])
    signals.family_created.send(sender=Family, family=family, contributions=cleaned_contributions)
    return family


@transaction.atomic
def update_family(
    family_uuid: Any,
    *,
    location: Location | None = None,
    contributions: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> Family:
    """Change a family (a history row keeps the old values) and send `family_updated`. Standalone only."""
    _refuse_when_attached("a family")
    cleaned_contributions = _clean_contributions(contributions)
    family = _current_family(family_uuid)
    if location is not None and location.pk != family.location_id:
        _clean_location(location)
        family.save_history(at)
        family.location = location
        family.save()
    signals.family_updated.send(sender=Family, family=family, contributions=cleaned_contributions)
    return family


@transaction.atomic
def delete_family(
    family_uuid: Any, *, contributions: Mapping[str, Any] | None = None, at: dt.datetime | None = None
) -> Family:
    """Retire a family and its members (openIMIS deletes by closing validity) and send `family_deleted`.
    Standalone only."""
    _refuse_when_attached("a family")
    cleaned_contributions = _clean_contributions(contributions)
    family = _current_family(family_uuid)
    at = at or timezone.now()
    Insuree.objects.current().filter(family=family).update(validity_to=at)
    family.retire(at)
    signals.family_deleted.send(sender=Family, family=family, contributions=cleaned_contributions)
    return family


INSUREE_FIELDS = {"chf_id", "last_name", "other_names", "phone", "dob"}


@transaction.atomic
def update_insuree(insuree_uuid: Any, changes: Mapping[str, Any], *, at: dt.datetime | None = None) -> Insuree:
    """Change an insuree's fields (history row kept) and send `insuree_changed` so derived phones follow.
    Standalone only."""
    _refuse_when_attached("an insuree")
    if not isinstance(changes, Mapping):
        raise ValidationError({"changes": "must be a dict of field names to values"})
    unknown = sorted(str(key) for key in changes if key not in INSUREE_FIELDS)
    if unknown:
        raise ValidationError({_printable(key): "unknown or read-only field" for key in unknown})
    key = _uuid_text(insuree_uuid, "insuree_uuid")
    insuree = Insuree.objects.current().with_uuid(key).first()
    if insuree is None:
        raise ValidationError({"insuree_uuid": f"no current insuree with uuid {key}"})
    candidate = MemberData(
        chf_id=changes.get("chf_id", insuree.chf_id),
        last_name=changes.get("last_name", insuree.last_name),
        other_names=changes.get("other_names", insuree.other_names),
        phone=changes.get("phone", insuree.phone),
        dob=changes.get("dob", insuree.dob),
    )
    _clean_member(candidate, "")
    insuree.save_history(at)
    for name, value in changes.items():
        setattr(insuree, name, value)
    insuree.save()
    signals.insuree_changed.send(sender=Insuree, insuree=insuree)
    return insuree
