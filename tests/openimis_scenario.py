"""One small openIMIS scheme as plain SQL rows, loadable into a real openIMIS database (attached) and into the
service's own copies of the tables (standalone), so that both modes can be shown to send the same messages.

Rows are written the way openIMIS writes them: AuditUserID and the other NOT NULL columns filled, some UUIDs in
upper case (rows migrated from SQL Server), nullable columns NULL where openIMIS allows it, versions as history
rows (ValidityTo set, LegacyID = the current row's id). Standalone tables lack openIMIS's extra columns: only the
columns a table has are written (tblFamilySMS case-insensitively, for its lower-case spelling).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import sql

TZ = ZoneInfo("Africa/Dar_es_Salaam")
AUDIT = {"AuditUserID": 1}
BASE = 910000  # explicit ids, far above what sequences hand out in the test database


@dataclass
class Row:
    table: str
    values: dict[str, Any]
    attached_only: bool = False  # consent history: the standalone tblFamilySMS keeps one row per family


@dataclass
class Scenario:
    day: dt.date
    rows: list[Row] = field(default_factory=list)
    expected: set[tuple[str, int]] = field(default_factory=set)  # (notification type, policy id) sent on `day`


def at(day: dt.date, hour: int = 9) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=TZ)


def _uuid(number: int, upper: bool = False) -> str:
    text = f"{number:08x}-aaaa-4bbb-8ccc-{number:012x}"
    return text.upper() if upper else text


def family_uuid(n: int) -> str:
    """Family n's UUID as written (families 1 and 10 in upper case)."""
    return _uuid(BASE + n, upper=n in (1, 10))


def district_uuid() -> str:
    return _uuid(BASE + 2, upper=True)


def build(day: dt.date) -> Scenario:
    """Families 1..10 (ids BASE+n), each with one story; `expected` is what a run on `day` sends."""
    d = dt.timedelta(days=1)
    s = Scenario(day)
    add = s.rows.append
    region, district, ward, village = BASE + 1, BASE + 2, BASE + 3, BASE + 4
    for number, (code, kind, parent) in enumerate(
        [("R9", "R", None), ("D9", "D", region), ("W9", "W", district), ("V9", "V", ward)], start=1
    ):
        add(
            Row(
                "tblLocations",
                {
                    "LocationId": BASE + number,
                    "LocationUUID": _uuid(BASE + number, upper=number == 2),
                    "LocationCode": code,
                    "LocationName": None if kind == "W" else f"Place {code}",  # nullable in openIMIS
                    "LocationType": kind,
                    "ParentLocationId": parent,
                    "ValidityFrom": at(day - 400 * d),
                    **AUDIT,
                },
            )
        )
    add(
        Row(
            "tblOfficer",
            {
                "OfficerID": BASE + 1,
                "OfficerUUID": _uuid(BASE + 101, upper=True),
                "Code": "EO9",
                "LastName": "Mushi",
                "OtherNames": "Amani",
                "Phone": None,
                "LocationId": district,
                "ValidityFrom": at(day - 400 * d),
                **AUDIT,
            },
        )
    )
    product = BASE + 1
    add(
        Row(
            "tblProduct",
            {
                "ProdID": product,
                "ProdUUID": _uuid(BASE + 201),
                "ProductCode": "CHF9",
                "ProductName": "Community cover",
                "DateFrom": at(day - 800 * d),
                "DateTo": at(day + 800 * d),
                "LumpSum": 10000,
                "MemberCount": 6,
                "GracePeriod": 0,
                "InsurancePeriod": 12,
                "ConversionProdID": None,
                "ValidityFrom": at(day - 800 * d),
                **AUDIT,
            },
        )
    )

    def family(n: int, phones: list[str | None], consent: tuple[bool, str] | None, upper: bool = False) -> int:
        family_id, head_id = BASE + n, BASE + 100 * n
        add(
            Row(
                "tblFamilies",
                {
                    "FamilyID": family_id,
                    "FamilyUUID": _uuid(family_id, upper),
                    "InsureeID": head_id,
                    "LocationId": village,
                    "ValidityFrom": at(day - 365 * d),
                    **AUDIT,
                },
            )
        )
        for index, phone in enumerate(phones):
            add(
                Row(
                    "tblInsuree",
                    {
                        "InsureeID": head_id + index,
                        "InsureeUUID": _uuid(head_id + index, upper),
                        "FamilyID": family_id,
                        "CHFID": f"9{n:04d}{index:02d}",
                        "LastName": f"Family{n}",
                        "OtherNames": "Neema" if index else "Baraka",
                        "IsHead": index == 0,
                        "Phone": phone,
                        "DOB": dt.date(1980, 1, 1) + index * 3000 * d,
                        "CardIssued": False,
                        "ValidityFrom": at(day - 365 * d),
                        **AUDIT,
                    },
                )
            )
        if consent is not None:
            approved, language = consent
            # an older consent row, closed when the family changed its mind: openIMIS keeps it as history
            add(
                Row(
                    "tblFamilySMS",
                    {
                        "FamilyID": family_id,
                        "ApprovalOfSMS": not approved,
                        "LanguageOfSMS": language,
                        "ValidityFrom": at(day - 300 * d),
                        "ValidityTo": at(day - 200 * d),
                    },
                    attached_only=True,
                )
            )
            add(
                Row(
                    "tblFamilySMS",
                    {
                        "FamilyID": family_id,
                        "ApprovalOfSMS": approved,
                        "LanguageOfSMS": language,
                        "ValidityFrom": at(day - 200 * d),
                        "ValidityTo": None,
                    },
                )
            )
        return family_id

    def policy(
        n: int,
        family_id: int,
        *,
        stage: str = "N",
        status: int = 2,
        start: dt.date,
        expiry: dt.date,
        valid_from: dt.datetime,
        history: list[tuple[int, dt.datetime, dt.datetime]] = (),  # type: ignore[assignment]
        upper: bool = False,
    ) -> int:
        """The current row; `history`: (status, valid from, valid to) of earlier versions, oldest first."""
        policy_id = BASE + n
        common = {
            "PolicyStage": stage,
            "EnrollDate": start - 10 * d,
            "StartDate": start,
            "EffectiveDate": start,
            "ExpiryDate": expiry,
            "FamilyID": family_id,
            "ProdID": product,
            "OfficerID": None if n % 2 else BASE + 1,
            "PolicyValue": None,
            **AUDIT,
        }
        add(
            Row(
                "tblPolicy",
                {
                    "PolicyID": policy_id,
                    "PolicyUUID": _uuid(policy_id, upper),
                    "PolicyStatus": status,
                    "ValidityFrom": valid_from,
                    **common,
                },
            )
        )
        for version, (old_status, old_from, old_to) in enumerate(history, start=1):
            add(
                Row(
                    "tblPolicy",
                    {
                        "PolicyID": policy_id + 500 * version,
                        "PolicyUUID": _uuid(policy_id + 500 * version),
                        "PolicyStatus": old_status,
                        "ValidityFrom": old_from,
                        "ValidityTo": old_to,
                        "LegacyID": policy_id,
                        **common,
                    },
                )
            )
        return policy_id

    yes_sw, yes_en = (True, "sw"), (True, "en")
    # 1: idle, paid yesterday -> activated yesterday
    p = policy(
        1,
        family(1, ["0712000001"], yes_sw, upper=True),
        start=day + 5 * d,
        expiry=day + 370 * d,
        valid_from=at(day - d),
        history=[(1, at(day - 30 * d), at(day - d))],
        upper=True,
    )
    s.expected.add(("activation_of_policy", p))
    # 2: active for a month, edited yesterday (value corrected): no second activation
    policy(
        2,
        family(2, ["0712000002"], yes_en),
        start=day - 20 * d,
        expiry=day + 345 * d,
        valid_from=at(day - d),
        history=[(2, at(day - 30 * d), at(day - d))],
    )
    # 3: cover starts today
    p = policy(3, family(3, [None, "0754000003"], yes_sw), start=day, expiry=day + 364 * d, valid_from=at(day - 12 * d))
    s.expected.add(("starting_of_policy", p))
    # 4: expires in 5 days, not renewed
    p = policy(
        4, family(4, ["0712000004"], yes_en), start=day - 360 * d, expiry=day + 5 * d, valid_from=at(day - 362 * d)
    )
    s.expected.add(("need_for_renewal", p))
    # 5: expires today
    p = policy(5, family(5, ["0712000005"], yes_sw), start=day - 365 * d, expiry=day, valid_from=at(day - 367 * d))
    s.expected.add(("expiration_of_policy", p))
    # 6: expired 5 days ago (status expired)
    p = policy(
        6,
        family(6, ["+255 712 000 006"], yes_sw),
        status=8,
        start=day - 370 * d,
        expiry=day - 5 * d,
        valid_from=at(day - 4 * d),
        history=[(2, at(day - 372 * d), at(day - 4 * d))],
    )
    s.expected.add(("reminder_after_expiration", p))
    # 7: a renewal created already paid yesterday (no earlier version) -> renewal
    p = policy(
        7, family(7, ["0712000007"], yes_en), stage="R", start=day + 3 * d, expiry=day + 368 * d, valid_from=at(day - d)
    )
    s.expected.add(("renewal_of_policy", p))
    # 8: activated yesterday, but the family said no to SMS: not sent
    policy(
        8,
        family(8, ["0712000008"], (False, "sw")),
        start=day + 5 * d,
        expiry=day + 370 * d,
        valid_from=at(day - d),
        history=[(1, at(day - 30 * d), at(day - d))],
    )
    # 9: expires today, no valid phone: not sent
    policy(9, family(9, ["n/a", None], yes_sw), start=day - 365 * d, expiry=day, valid_from=at(day - 367 * d))
    # 10: renewal idle->active yesterday, then edited today while active: the edit is no activation, and the day
    # it became active lies in the history row, so nothing today either
    policy(
        10,
        family(10, ["0712000010"], yes_sw, upper=True),
        stage="R",
        start=day + 5 * d,
        expiry=day + 370 * d,
        valid_from=at(day, 8),
        history=[(1, at(day - 30 * d), at(day - d)), (2, at(day - d), at(day, 8))],
    )
    # 11: a renewal idle until paid yesterday -> renewed yesterday
    p = policy(
        11,
        family(11, ["0712000011"], yes_en),
        stage="R",
        start=day + 2 * d,
        expiry=day + 367 * d,
        valid_from=at(day - d, 15),
        history=[(1, at(day - 20 * d), at(day - d, 15))],
    )
    s.expected.add(("renewal_of_policy", p))
    # 12: the version before has no status (NULL, allowed by openIMIS): not active, so this is an activation
    p = policy(
        12,
        family(12, ["0712000012"], yes_sw),
        start=day + 6 * d,
        expiry=day + 371 * d,
        valid_from=at(day - 2 * d),
        history=[(None, at(day - 9 * d), at(day - 2 * d))],  # type: ignore[list-item]
    )
    s.expected.add(("activation_of_policy", p))
    return s


def table_columns(cursor: Any, table: str, schema: str | None = None) -> dict[str, str]:
    """Lower-cased column name -> real name of `table` (in `schema`, else the first on the search path)."""
    if schema is None:
        cursor.execute(
            "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
            "AND NOT a.attisdropped",
            [f'"{table}"'],
        )
    else:
        cursor.execute(
            "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
            "AND NOT a.attisdropped",
            [f'"{schema}"."{table}"'],
        )
    return {name.lower(): name for (name,) in cursor.fetchall()}


def write(cursor: Any, scenario: Scenario, *, attached: bool, schema: str | None = None) -> int:
    """INSERT the rows with plain SQL; only the columns each table has. Returns rows written."""
    columns: dict[str, dict[str, str]] = {}
    written = 0
    for row in scenario.rows:
        if row.attached_only and not attached:
            continue
        if row.table not in columns:
            columns[row.table] = table_columns(cursor, row.table, schema)
        names = columns[row.table]
        values = {names[key.lower()]: value for key, value in row.values.items() if key.lower() in names}
        target = sql.Identifier(schema, row.table) if schema else sql.Identifier(row.table)
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            target,
            sql.SQL(", ").join(sql.Identifier(name) for name in values),
            sql.SQL(", ").join(sql.Placeholder() for _ in values),
        )
        cursor.execute(statement, list(values.values()))
        written += 1
    return written


LANGUAGES = [("en", "English", None), ("sw", "Kiswahili", 1)]  # SortOrder NULL is allowed in openIMIS


def write_languages(cursor: Any, schema: str | None = None) -> None:
    target = sql.Identifier(schema, "tblLanguages") if schema else sql.Identifier("tblLanguages")
    for code, name, order in LANGUAGES:
        cursor.execute(
            sql.SQL(
                'INSERT INTO {} ("LanguageCode", "LanguageName", "SortOrder") VALUES (%s, %s, %s) '
                "ON CONFLICT DO NOTHING"
            ).format(target),
            [code, name, order],
        )


def fingerprint(cursor: Any, schema: str, tables: list[str]) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the rows' text, in order, per table: the proof that nothing was written."""
    result = {}
    for table in tables:
        cursor.execute(
            sql.SQL("SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {} t").format(
                sql.Identifier(schema, table)
            )
        )
        count, digest = cursor.fetchone()
        result[table] = (count, digest)
    return result
