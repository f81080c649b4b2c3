"""The family policy notification report (SPEC §9): which families of an area can be reached, and how.

`ReportParams.from_query` turns the seed's query parameters into validated parameters (errors name the
parameter); `open_report` is a pure read: two SQL queries whatever the number of families (the places: one row
per location; the families, read through a server-side cursor FETCH_ROWS rows at a time), so a report of any size
is never held whole in memory.

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
  On PostgreSQL the query sorts by one integer per family, its location's rank in that order (`_Places`), rather
  than by six CASE columns over the location chain; the labels come from the same per-location table.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    Expression,
    F,
    FilteredRelation,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
    Window,
)
from django.db.models.functions import DenseRank
from django.db.models.sql.constants import MULTI

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


def _level(location_type: str, attribute: str, chain: tuple[str, ...] = _FAMILY_CHAIN) -> Case:
    """The code or name of the first location of this type in `chain` (a location, its parent, its grandparent;
    "" is the model's own row): the family's own location or an ancestor."""

    def field(path: str, name: str) -> str:
        return f"{path}__{name}" if path else name

    whens = [When(**{field(path, "type"): location_type}, then=F(field(path, attribute))) for path in chain]
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
_LOCATION_CHAIN = ("", "parent", "parent__parent")  # the same chain as _FAMILY_CHAIN, from a location
# Beyond this span of location ids the rank array (one int per id) is not worth it: sort by the place columns.
_MAX_RANK_SPAN = 1_000_000


def _place_columns(chain: tuple[str, ...] = _FAMILY_CHAIN) -> dict[str, Case]:
    """The _PLACE_COLUMNS as expressions over the location chain starting at `chain`."""
    return {f"{level}_{part}": _level(kind, part, chain) for kind, level in _PLACE_LEVELS for part in ("code", "name")}


class _Places:
    """Every location's place (district, ward and village labels) and its rank in the report's order.

    The place columns of a row depend only on its family's LocationId, so they are worked out once per location
    (a few thousand) instead of once per family; `rank` numbers the distinct places in the report's order (code
    then name of district, ward, village, NULLS LAST, in the database's collation since the database ranks them),
    equal places sharing a rank. A location without any of the three levels gets no rank: like a family without
    a location, it sorts after all the others ("unknown" last)."""

    def __init__(self) -> None:
        located = (
            Location.objects.order_by()
            .annotate(
                **_place_columns(_LOCATION_CHAIN),
                place_rank=Window(DenseRank(), order_by=[F(name).asc(nulls_last=True) for name in _PLACE_COLUMNS]),
            )
            .values_list("id", "place_rank", *_PLACE_COLUMNS)
        )
        self.labels: dict[int, tuple[str, str, str]] = {}
        self.rank: dict[int, int | None] = {}
        for location_id, rank, *columns in located:
            self.labels[location_id] = _labels(columns)
            self.rank[location_id] = None if all(column is None for column in columns) else rank

    def label_of(self, location_id: int | None) -> tuple[str, str, str]:
        """(district, ward, village) of a LocationId; one query for a location created after the ranks were read."""
        if location_id is None:
            return _NOWHERE
        labels = self.labels.get(location_id)
        if labels is None:
            columns = (
                Location.objects.filter(pk=location_id)
                .annotate(**_place_columns(_LOCATION_CHAIN))
                .values_list(*_PLACE_COLUMNS)
                .get()
            )
            labels = self.labels[location_id] = _labels(columns)
        return labels

    def rank_array(self) -> tuple[int, list[int | None]] | None:
        """(offset, ranks) with ranks[LocationId - offset - 1] the rank (a 1-based SQL array), or None when the
        ids span too wide a range for one array."""
        if not self.rank:
            return 0, []
        low, high = min(self.rank), max(self.rank)
        if high - low >= _MAX_RANK_SPAN:
            return None
        ranks: list[int | None] = [None] * (high - low + 1)
        for location_id, rank in self.rank.items():
            ranks[location_id - low] = rank
        return low - 1, ranks


_NOWHERE = (UNKNOWN, UNKNOWN, UNKNOWN)


def _labels(columns: Sequence[str | None]) -> tuple[str, str, str]:
    district_code, district_name, ward_code, ward_name, village_code, village_name = columns
    return _label(district_code, district_name), _label(ward_code, ward_name), _label(village_code, village_name)


class _RankOf(Expression):
    """`(ranks::int[])[LocationId - offset]`: the place rank of the family's location, one array parameter
    (PostgreSQL; NULL for a family without a location or a location missing from the array)."""

    output_field = IntegerField()

    def __init__(self, location: F, offset: int, ranks: list[int | None]) -> None:
        super().__init__()
        self.location, self.offset, self.ranks = location, offset, ranks

    def get_source_expressions(self) -> list[Any]:
        return [self.location]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.location,) = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        location_sql, location_params = compiler.compile(self.location)
        return f"(%s::int[])[{location_sql} - %s]", [self.ranks, *location_params, self.offset]


# The columns the query selects, in this order (_row reads them by position; `families` last).
_SELECTED = (
    "location_id",
    "uuid",
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


def report_queryset(params: ReportParams, places: _Places | None = None) -> QuerySet[Family, tuple[Any, ...]]:
    """The report as one SELECT of the _SELECTED columns (exposed so that tests and the bench can inspect or count
    it). Every row carries `families`, the number of rows (a window count), so that the JSON and the PDF can say it
    before the rows. On PostgreSQL the places are sorted by their rank (`places`, read when not given): one integer
    instead of six CASE columns over the location chain; elsewhere by those columns."""
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
        families=Window(Count(Value(1))),
    )
    ranks = None
    if connection.vendor == "postgresql":
        ranks = (places or _Places()).rank_array()
    if ranks is not None:
        place_order: list[Any] = [_RankOf(F("location_id"), *ranks).asc(nulls_last=True)]
    else:
        families = families.annotate(**_place_columns())
        place_order = [F(name).asc(nulls_last=True) for name in _PLACE_COLUMNS]
    ordered = families.order_by(
        *place_order,
        *(
            F(name).asc(nulls_last=True)
            for name in ("head_insuree__last_name", "head_insuree__other_names", "head_insuree__chf_id")
        ),
        "id",
    )
    rows: QuerySet[Family, tuple[Any, ...]] = ordered.values_list(*_SELECTED)
    return rows


def _row_maker(places: _Places) -> Callable[[tuple[Any, ...]], ReportRow]:
    """Builds a ReportRow from a row of _SELECTED, by position (tuple.__new__: no keyword handling per row)."""
    make = tuple.__new__
    label_of = places.label_of

    def row(values: tuple[Any, ...]) -> ReportRow:
        (
            location_id,
            family_uuid,
            head_id,
            chf_id,
            other_names,
            last_name,
            head_phone,
            approved,
            language,
            sms_phone,
            texted_id,
            member_other_names,
            member_last_name,
            member_phone,
            _,
        ) = values
        district, ward, village = label_of(location_id)
        if texted_id is not None and texted_id != head_id:
            member = (member_other_names, member_last_name, _blank_to_none(member_phone))
        else:
            member = (None, None, None)
        return make(  # type: ignore[no-any-return]
            ReportRow,
            (
                district,
                ward,
                village,
                str(family_uuid),
                chf_id,
                other_names,
                last_name,
                _blank_to_none(head_phone),
                bool(approved),
                language,
                *member,
                sms_phone,
            ),
        )

    return row


def _tuples(rows: QuerySet[Family, tuple[Any, ...]], fetch_rows: int) -> Iterator[tuple[Any, ...]]:
    """The query's rows as the driver gives them, through a server-side cursor (unless the settings disable those).
    On PostgreSQL psycopg already gives the Python values (UUID, bool, int), so Django's per-row converters (~0.6 s
    for 100,000 rows, all no-ops but the count's int()) are skipped; other databases need them (SQLite's UUIDs)."""
    if connection.vendor != "postgresql":
        yield from rows.iterator(chunk_size=fetch_rows)
        return
    chunked = not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    compiler = rows.query.get_compiler(using=rows.db)
    for batch in compiler.execute_sql(MULTI, chunked_fetch=chunked, chunk_size=fetch_rows):
        yield from batch


@dataclass(frozen=True)
class OpenReport:
    """A report whose query has run: its number of rows, and the rows, read as they are consumed."""

    count: int
    rows: Iterator[ReportRow]


def _in_own_transaction(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """`rows` read inside a transaction of their own, which ends when they are exhausted or closed.

    Outside a transaction Django declares the server-side cursor WITH HOLD, and PostgreSQL then writes the whole
    result out (a tuplestore, on disk beyond work_mem) when the declaring statement commits, before the first FETCH;
    inside one it is an ordinary cursor read straight from the sort (100,000 families: first byte 1.3 s instead of
    1.4-2.0 s). Anything else run on the connection before the rows are exhausted joins the transaction, so only a
    caller that does nothing else meanwhile asks for this (the endpoint: the response streams the rows)."""
    with transaction.atomic():
        yield from rows


def open_report(params: ReportParams, fetch_rows: int = FETCH_ROWS, *, own_transaction: bool = True) -> OpenReport:
    """Run the report's query and read its first rows, so that a failing query fails here, before a response has
    started; the other rows come from the server-side cursor as `rows` is consumed.

    With `own_transaction` (PostgreSQL, in autocommit) the rows are read inside a transaction that ends with them
    (_in_own_transaction): pass False when the connection is used for something else while the rows are read (the
    report worker writes its progress meanwhile, which must be seen, and committed, as it goes)."""
    places = _Places()
    cursor = _tuples(report_queryset(params, places), fetch_rows)
    if own_transaction and connection.vendor == "postgresql" and not connection.in_atomic_block:
        cursor = _in_own_transaction(cursor)
    first = next(cursor, None)
    if first is None:
        return OpenReport(count=0, rows=iter(()))
    return OpenReport(count=int(first[-1]), rows=map(_row_maker(places), itertools.chain((first,), cursor)))


def build_report(params: ReportParams) -> list[ReportRow]:
    """The report's rows, all in a list, ordered district → ward → village → head name. Two queries. For tests and
    small areas: the endpoint and the worker stream them (open_report)."""
    return list(open_report(params).rows)
