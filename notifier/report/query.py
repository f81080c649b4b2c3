"""The family policy notification report (SPEC §9): which families of an area can be reached, and how.

`ReportParams.from_query` turns the seed's query parameters into validated parameters (errors name the
parameter); `open_report` is a pure read: one SQL query whatever the number of families, read through a
server-side cursor FETCH_ROWS rows at a time, so a report of any size is never held whole in memory.

Decisions worth knowing:

- Area: `districtUuid` wins over `regionUuid` (a given region is then ignored, but still has to be a UUID);
  neither is an error. A family is in the area when its location or one of that location's ancestors is the
  area, so a family attached to a ward or a district directly still appears, with the missing levels shown as
  "unknown". A family without any location cannot be placed by itself: it is counted in the area of the
  enrolment officer of one of its current policies (the officer's location chain contains the area) and is
  grouped under "unknown".
- Officer: with `officerUuid`, only families holding a *current* policy row (ValidityTo IS NULL, any status)
  of that officer are counted; history rows of policies do not count.
- Mode: the eligibility modes of notifier.eligibility (a family without a current consent row has no approval;
  "has phone" means a valid phone by the sender's rule, i.e. a FamilyPhone row).
- Phones: `head_phone` is the head's own phone as stored in the register (blank shown as none), so field
  staff see what is on file. "The head has no phone" means the head has no *valid* phone: the sender would not
  text the head. Only then are the member columns filled, with the member the sender would text instead (the
  FamilyPhone insuree: the first current member by id with a valid phone) and that member's stored phone.
  `sms_phone` is the E.164 number the sender would use, for every family that has one.
- Order: district, ward, village (by code then name; "unknown" last), then head last name, other names, CHFID.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db.models import Case, Count, Exists, F, FilteredRelation, OuterRef, Q, QuerySet, Value, When, Window

from notifier.eligibility import MODE_LABELS, Mode, filter_by_mode, parse_mode
from notifier.models import Family, Location, Officer, Policy
from notifier.safe_input import parse_uuid

UNKNOWN = "unknown"
FORMATS = ("json", "csv", "pdf")
# Rows per FETCH from the server-side cursor: what the report holds in memory at a time.
FETCH_ROWS = 2000

# Levels of the location tree below a family's own location that can name its district, ward or village.
_FAMILY_CHAIN = ("location", "location__parent", "location__parent__parent")


class ReportParamError(ValueError):
    """A report parameter is missing, malformed or unknown; `param` is its name in the query string."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class ReportParams:
    area: Location  # the district when districtUuid was given, else the region
    mode: Mode = Mode.ALL
    officer: Officer | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ReportParams:
        """Validate regionUuid / districtUuid / officerUuid / mode (missing mode: 0, all families)."""
        region_uuid = _uuid_param(query, "regionUuid")
        district_uuid = _uuid_param(query, "districtUuid")
        officer_uuid = _uuid_param(query, "officerUuid")
        mode = _mode_param(query)
        if district_uuid is not None:
            area = _area(district_uuid, Location.Type.DISTRICT, "districtUuid")
        elif region_uuid is not None:
            area = _area(region_uuid, Location.Type.REGION, "regionUuid")
        else:
            raise ReportParamError("districtUuid", "give districtUuid or regionUuid")
        officer = None
        if officer_uuid is not None:
            officer = Officer.objects.current().with_uuid(str(officer_uuid)).first()
            if officer is None:
                raise ReportParamError("officerUuid", f"no current enrolment officer with uuid {officer_uuid}")
        return cls(area=area, mode=mode, officer=officer)

    @property
    def area_label(self) -> str:
        return f"{self.area.get_type_display()} {self.area.code or ''} {self.area.name or ''}".strip()

    @property
    def officer_label(self) -> str:
        if self.officer is None:
            return "all enrolment officers"
        return f"{self.officer.code} {self.officer.other_names} {self.officer.last_name}"

    @property
    def mode_label(self) -> str:
        return f"{int(self.mode)} {MODE_LABELS[self.mode]}"


def _uuid_param(query: Mapping[str, str], name: str) -> uuid.UUID | None:
    raw = query.get(name)
    if raw is None or not str(raw).strip():
        return None
    key = parse_uuid(str(raw))
    if key is None:
        raise ReportParamError(name, f"not a valid UUID: {raw!r}")
    return key


def _mode_param(query: Mapping[str, str]) -> Mode:
    raw = query.get("mode")
    if raw is None or not str(raw).strip():
        return Mode.ALL
    try:
        return parse_mode(raw, field="mode")
    except ValidationError:
        raise ReportParamError("mode", f"must be one of 0-4, got {raw!r}") from None


def _area(key: uuid.UUID, location_type: str, param: str) -> Location:
    area = Location.objects.current().filter(type=location_type).with_uuid(str(key)).first()
    if area is None:
        kind = Location.Type(location_type).label.lower()
        raise ReportParamError(param, f"no current {kind} with uuid {key}")
    return area


class ReportRow(NamedTuple):
    """One family of the report (a tuple: cheap to make 100,000 of, read field by field or in FIELDS order)."""

    district: str
    ward: str
    village: str
    family_uuid: str
    head_chf_id: str | None
    head_other_names: str | None
    head_last_name: str | None
    head_phone: str | None
    approval: bool
    language: str | None
    member_other_names: str | None
    member_last_name: str | None
    member_phone: str | None
    sms_phone: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(FIELDS, self, strict=True))


FIELDS: tuple[str, ...] = ReportRow._fields


def _within(area_id: int, chain_start: str) -> Q:
    """The location at `chain_start` is the area or lies below it (up to a village under a region)."""
    condition = Q()
    path = chain_start
    for _ in range(4):
        condition |= Q(**{path: area_id})
        path = f"{path}__parent"
    return condition


def _level(location_type: str, attribute: str) -> Case:
    """The code or name of the family's location of this type: its own location or an ancestor."""
    whens = [When(**{f"{path}__type": location_type}, then=F(f"{path}__{attribute}")) for path in _FAMILY_CHAIN]
    return Case(*whens, default=None)


def _label(code: str | None, name: str | None) -> str:
    if code is None and name is None:
        return UNKNOWN
    return f"{code or ''} {name or ''}".strip()


def _blank_to_none(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


# The places a row is filed under, outermost first: each gives a `<level>_code` and a `<level>_name` column.
_PLACE_LEVELS = ((Location.Type.DISTRICT, "district"), (Location.Type.WARD, "ward"), (Location.Type.VILLAGE, "village"))
_PLACE_COLUMNS = tuple(f"{level}_{part}" for _, level in _PLACE_LEVELS for part in ("code", "name"))


def report_queryset(params: ReportParams) -> QuerySet[Family, dict[str, Any]]:
    """The report as one SELECT (exposed so that tests and the bench can inspect or count it). Every row carries
    `families`, the number of rows (a window count), so that the JSON and the PDF can say it before the rows."""
    families = filter_by_mode(Family.objects.current(), params.mode)
    area_id = params.area.pk
    placed_by_officer = Exists(
        Policy.objects.current().filter(family_id=OuterRef("pk")).filter(_within(area_id, "officer__location"))
    )
    families = families.filter(_within(area_id, "location") | (Q(location__isnull=True) & placed_by_officer))
    if params.officer is not None:
        families = families.filter(
            Exists(Policy.objects.current().filter(family_id=OuterRef("pk"), officer_id=params.officer.pk))
        )
    families = families.annotate(
        consent=FilteredRelation("notification", condition=Q(notification__validity_to__isnull=True)),
        **{f"{level}_{part}": _level(kind, part) for kind, level in _PLACE_LEVELS for part in ("code", "name")},
        families=Window(Count(Value(1))),
    )
    ordered = families.order_by(
        *(
            F(name).asc(nulls_last=True)
            for name in (
                *_PLACE_COLUMNS,
                "head_insuree__last_name",
                "head_insuree__other_names",
                "head_insuree__chf_id",
            )
        ),
        "id",
    )
    rows: QuerySet[Family, dict[str, Any]] = ordered.values(  # typed: the django plugin cannot read *_PLACE_COLUMNS
        "uuid",
        *_PLACE_COLUMNS,
        "head_insuree_id",
        "head_insuree__chf_id",
        "head_insuree__other_names",
        "head_insuree__last_name",
        "head_insuree__phone",
        "sms_approved",
        "consent__language_of_sms",
        "sms_phone__phone",
        "sms_phone__insuree_id",
        "sms_phone__insuree__other_names",
        "sms_phone__insuree__last_name",
        "sms_phone__insuree__phone",
        "families",
    )
    return rows


def _row(values: dict[str, Any]) -> ReportRow:
    texted_insuree = values["sms_phone__insuree_id"]
    member_fills_in = texted_insuree is not None and texted_insuree != values["head_insuree_id"]
    return ReportRow(
        district=_label(values["district_code"], values["district_name"]),
        ward=_label(values["ward_code"], values["ward_name"]),
        village=_label(values["village_code"], values["village_name"]),
        family_uuid=str(values["uuid"]),
        head_chf_id=values["head_insuree__chf_id"],
        head_other_names=values["head_insuree__other_names"],
        head_last_name=values["head_insuree__last_name"],
        head_phone=_blank_to_none(values["head_insuree__phone"]),
        approval=bool(values["sms_approved"]),
        language=values["consent__language_of_sms"],
        member_other_names=values["sms_phone__insuree__other_names"] if member_fills_in else None,
        member_last_name=values["sms_phone__insuree__last_name"] if member_fills_in else None,
        member_phone=_blank_to_none(values["sms_phone__insuree__phone"]) if member_fills_in else None,
        sms_phone=values["sms_phone__phone"],
    )


@dataclass(frozen=True)
class OpenReport:
    """A report whose query has run: its number of rows, and the rows, read as they are consumed."""

    count: int
    rows: Iterator[ReportRow]


def open_report(params: ReportParams, fetch_rows: int = FETCH_ROWS) -> OpenReport:
    """Run the report's query and read its first rows, so that a failing query fails here, before a response has
    started; the other rows come from the server-side cursor as `rows` is consumed."""
    cursor = report_queryset(params).iterator(chunk_size=fetch_rows)
    first = next(cursor, None)
    if first is None:
        return OpenReport(count=0, rows=iter(()))
    return OpenReport(count=int(first["families"]), rows=map(_row, itertools.chain((first,), cursor)))


def build_report(params: ReportParams) -> list[ReportRow]:
    """The report's rows, all in a list, ordered district → ward → village → head name. One query. For tests and
    small areas: the endpoint and the worker stream them (open_report)."""
    return list(open_report(params).rows)
