"""Builders for the report tests: a two-region location tree, families through the family service (the fast bulk
path for the large-report and query-count tests is tests/factories.py's bulk_families)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group, User
from django.http import HttpResponseBase
from django.test import Client
from django.utils import timezone

from notifier import services
from notifier.models import Family, FamilyNotification, Location, Officer, Policy, Product

VALID_PHONE = "0712345678"  # +255712345678
OTHER_VALID_PHONE = "0754000111"  # +255754000111
INVALID_PHONE = "12345"
REPORT_URL = "/api/policy_notification/communication_by_notification_report/"
# Report queries the report refuses, each with the parameter it names: {d1}, {r1} and {unknown} stand for a
# district's, a region's and an unknown UUID (fill_query). The query layer and the endpoint are tested on all of them.
BAD_QUERIES = [
    ({}, "districtUuid"),
    ({"mode": "1"}, "districtUuid"),
    ({"regionUuid": "", "districtUuid": " "}, "districtUuid"),
    ({"districtUuid": "D1"}, "districtUuid"),
    ({"districtUuid": "not-a-uuid"}, "districtUuid"),
    ({"regionUuid": "12345"}, "regionUuid"),
    ({"regionUuid": "not-a-uuid"}, "regionUuid"),
    ({"districtUuid": "{d1}", "regionUuid": "nope"}, "regionUuid"),
    ({"districtUuid": "{unknown}"}, "districtUuid"),
    ({"regionUuid": "{unknown}"}, "regionUuid"),
    ({"regionUuid": "{d1}"}, "regionUuid"),  # a district's UUID is not a region
    ({"districtUuid": "{r1}"}, "districtUuid"),
    ({"districtUuid": "{d1}", "officerUuid": "x"}, "officerUuid"),
    ({"districtUuid": "{d1}", "officerUuid": "7"}, "officerUuid"),
    ({"districtUuid": "{d1}", "officerUuid": "{unknown}"}, "officerUuid"),
    ({"districtUuid": "{d1}", "mode": "7"}, "mode"),
    ({"districtUuid": "{d1}", "mode": "-1"}, "mode"),
    ({"districtUuid": "{d1}", "mode": "two"}, "mode"),
    ({"districtUuid": "{d1}", "mode": "1.5"}, "mode"),
    ({"districtUuid": "{d1}", "mode": "all"}, "mode"),
]

_numbers = itertools.count(1)


@dataclass
class Tree:
    r1: Location
    d1: Location
    d2: Location
    w1: Location
    w2: Location
    w3: Location
    v1: Location
    v2: Location
    v3: Location
    v4: Location
    r2: Location
    d3: Location
    w4: Location
    v5: Location


class Answer:
    """A response read whole, streamed (a JSON or CSV report, a file download) or not (errors, redirects, 202)."""

    def __init__(self, response: HttpResponseBase) -> None:
        self.response = response
        self.status_code = response.status_code
        self.streamed = bool(response.streaming)
        if response.streaming:
            self.content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        else:
            self.content = response.content  # type: ignore[attr-defined]

    def json(self) -> Any:
        return json.loads(self.content)

    def __getitem__(self, header: str) -> str:
        return str(self.response[header])


def _location(code: str, name: str, kind: str, parent: Location | None = None) -> Location:
    return Location.objects.create(code=code, name=name, type=kind, parent=parent)


def build_tree() -> Tree:
    """R1 Dodoma: D1 Bahi (W1: V1, V2; W2: V3), D2 Kondoa (W3: V4). R2 Kilimanjaro: D3 Moshi (W4: V5)."""
    r1 = _location("R1", "Dodoma", "R")
    d1 = _location("D1", "Bahi", "D", r1)
    d2 = _location("D2", "Kondoa", "D", r1)
    w1 = _location("W1", "Mjini", "W", d1)
    w2 = _location("W2", "Kati", "W", d1)
    w3 = _location("W3", "Juu", "W", d2)
    r2 = _location("R2", "Kilimanjaro", "R")
    d3 = _location("D3", "Moshi", "D", r2)
    w4 = _location("W4", "Chini", "W", d3)
    return Tree(
        r1=r1,
        d1=d1,
        d2=d2,
        w1=w1,
        w2=w2,
        w3=w3,
        v1=_location("V1", "Mlimani", "V", w1),
        v2=_location("V2", "Bondeni", "V", w1),
        v3=_location("V3", "Mtoni", "V", w2),
        v4=_location("V4", "Kisiwani", "V", w3),
        r2=r2,
        d3=d3,
        w4=w4,
        v5=_location("V5", "Majengo", "V", w4),
    )


def add_family(
    location: Location | None,
    last_name: str,
    *,
    head_phone: str | None = VALID_PHONE,
    member_phones: tuple[str | None, ...] = (),
    approval: bool | None = True,
    language: str = "en",
    other_names: str = "Amani",
) -> Family:
    """A family through the family service. approval=None: the family ends up with no consent row at all."""
    number = next(_numbers)
    members = [
        services.MemberData(
            chf_id=f"R{number:07d}00", last_name=last_name, other_names=other_names, phone=head_phone, head=True
        )
    ]
    for index, phone in enumerate(member_phones, start=1):
        members.append(
            services.MemberData(
                chf_id=f"R{number:07d}{index:02d}", last_name=last_name, other_names=f"Member{index}", phone=phone
            )
        )
    consent = {"approvalOfNotification": bool(approval), "languageOfNotification": language}
    if location is not None and location.type != Location.Type.VILLAGE:
        # The family service only places families in villages; openIMIS data is not always that tidy.
        family = services.create_family(members, contributions={services.CONTRIBUTION_KEY: consent})
        Family.objects.filter(pk=family.pk).update(location=location)
        family.refresh_from_db()
    else:
        family = services.create_family(members, location=location, contributions={services.CONTRIBUTION_KEY: consent})
    if approval is None:
        FamilyNotification.objects.filter(family=family).delete()
    return family


def add_officer(code: str, location: Location | None) -> Officer:
    return Officer.objects.create(code=code, last_name=f"Officer{code}", other_names="Juma", location=location)


def add_policy(family: Family, product: Product, officer: Officer | None) -> Policy:
    today = timezone.localdate()
    return Policy.objects.create(
        family=family,
        product=product,
        officer=officer,
        stage=Policy.Stage.NEW,
        status=Policy.Status.ACTIVE,
        enroll_date=today - dt.timedelta(days=30),
        start_date=today - dt.timedelta(days=20),
        effective_date=today - dt.timedelta(days=20),
        expiry_date=today + dt.timedelta(days=345),
    )


def report_user(username: str, *, group: str | None = None, staff: bool = False) -> User:
    user = User.objects.create_user(username, password="pw-not-used", is_staff=staff)
    if group is not None:
        user.groups.add(Group.objects.get(name=group))
    return user


def get_report(client: Client, **query: str) -> Answer:
    return Answer(client.get(REPORT_URL, query))


def fill_query(tree: Tree, query: dict[str, str]) -> dict[str, str]:
    """A BAD_QUERIES query with its placeholders replaced by the tree's UUIDs (and a fresh unknown one)."""
    values = {"d1": str(tree.d1.uuid), "r1": str(tree.r1.uuid), "unknown": str(uuid.uuid4())}
    return {key: value.format(**values) for key, value in query.items()}
