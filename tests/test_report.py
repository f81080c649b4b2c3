"""The report query and its parameters (notifier.report.query), against the real PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifier import services
from notifier.eligibility import Mode
from notifier.models import Family, Location, Policy, Product
from notifier.report.query import (
    _MAX_RANK_SPAN,
    UNKNOWN,
    ReportParamError,
    ReportParams,
    ReportRow,
    _Places,
    build_report,
)
from tests.factories import bulk_families
from tests.report_helpers import (
    BAD_QUERIES,
    INVALID_PHONE,
    OTHER_VALID_PHONE,
    VALID_PHONE,
    Tree,
    add_family,
    add_officer,
    add_policy,
    fill_query,
)


def _row_of(rows: list[ReportRow], family: Family) -> ReportRow:
    matching = [row for row in rows if row.family_uuid == str(family.uuid)]
    assert len(matching) == 1, f"family {family.pk} appears {len(matching)} times"
    return matching[0]


def _uuids(rows: list[ReportRow]) -> set[str]:
    return {row.family_uuid for row in rows}


# --- parameters -----------------------------------------------------------------------------------------------


def test_it_lets_the_district_win_over_the_region(tree: Tree) -> None:
    params = ReportParams.from_query({"regionUuid": str(tree.r2.uuid), "districtUuid": str(tree.d1.uuid)})
    assert params.area == tree.d1


def test_it_uses_the_region_when_no_district_is_given(tree: Tree) -> None:
    params = ReportParams.from_query({"regionUuid": str(tree.r1.uuid), "districtUuid": "", "mode": "3"})
    assert params.area == tree.r1
    assert params.mode is Mode.PHONE_NO_APPROVAL
    assert params.officer is None


def test_it_defaults_to_mode_all_and_finds_the_current_officer(tree: Tree) -> None:
    officer = add_officer("EO1", tree.d1)
    officer.save_history()  # a history row shares the UUID; only the current row may be picked
    officer.last_name = "Renamed"
    officer.save()
    params = ReportParams.from_query({"districtUuid": str(tree.d1.uuid), "officerUuid": str(officer.uuid)})
    assert params.mode is Mode.ALL
    assert params.officer is not None
    assert params.officer.pk == officer.pk
    assert params.officer_label == "EO1 Juma Renamed"


@pytest.mark.parametrize(("query", "param"), BAD_QUERIES)
def test_it_rejects_a_bad_parameter_naming_it(tree: Tree, query: dict[str, str], param: str) -> None:
    with pytest.raises(ReportParamError) as caught:
        ReportParams.from_query(fill_query(tree, query))
    assert caught.value.param == param
    assert str(caught.value).startswith(f"{param}: ")


def test_it_ignores_a_retired_location(tree: Tree) -> None:
    tree.d2.retire()
    with pytest.raises(ReportParamError) as caught:
        ReportParams.from_query({"districtUuid": str(tree.d2.uuid)})
    assert caught.value.param == "districtUuid"


# --- the rows ---------------------------------------------------------------------------------------------------


@pytest.fixture
def mode_families(tree: Tree) -> dict[str, Family]:
    """One family per eligibility situation, all in D1."""
    families = {
        "approval_phone": add_family(tree.v1, "Approved", approval=True),
        "approval_member_phone": add_family(tree.v1, "Member", head_phone=None, member_phones=(VALID_PHONE,)),
        "approval_no_phone": add_family(tree.v1, "Silent", head_phone=None, approval=True),
        "approval_invalid_phone": add_family(tree.v2, "Broken", head_phone=INVALID_PHONE, approval=True),
        "phone_no_approval": add_family(tree.v2, "Refused", approval=False),
        "phone_no_consent_row": add_family(tree.v3, "Rowless", approval=None),
        "neither": add_family(tree.v3, "Nobody", head_phone="  ", approval=False),
        "neither_no_consent_row": add_family(tree.v3, "Nothing", head_phone=None, approval=None),
    }
    retired = add_family(tree.v3, "Retired", approval=True)
    services.delete_family_notification_policy(retired.uuid)
    families["phone_retired_consent"] = retired
    return families


MODE_MEMBERS = {
    Mode.ALL: {
        "approval_phone",
        "approval_member_phone",
        "approval_no_phone",
        "approval_invalid_phone",
        "phone_no_approval",
        "phone_no_consent_row",
        "neither",
        "neither_no_consent_row",
        "phone_retired_consent",
    },
    Mode.APPROVAL_AND_PHONE: {"approval_phone", "approval_member_phone"},
    Mode.APPROVAL_NO_PHONE: {"approval_no_phone", "approval_invalid_phone"},
    Mode.PHONE_NO_APPROVAL: {"phone_no_approval", "phone_no_consent_row", "phone_retired_consent"},
    Mode.NEITHER: {"neither", "neither_no_consent_row"},
}


@pytest.mark.parametrize("mode", list(Mode))
def test_it_selects_the_families_of_each_mode(tree: Tree, mode_families: dict[str, Family], mode: Mode) -> None:
    rows = build_report(ReportParams(area=tree.d1, mode=mode))
    expected = {str(mode_families[name].uuid) for name in MODE_MEMBERS[mode]}
    assert _uuids(rows) == expected
    assert len(rows) == len(expected)
    wanted_approval = {Mode.APPROVAL_AND_PHONE: True, Mode.APPROVAL_NO_PHONE: True}.get(mode, False)
    if mode is not Mode.ALL:
        assert {row.approval for row in rows} == {wanted_approval}


def test_it_reports_consent_and_language_as_stored(tree: Tree, mode_families: dict[str, Family]) -> None:
    rows = build_report(ReportParams(area=tree.d1))
    approved = _row_of(rows, mode_families["approval_phone"])
    assert (approved.approval, approved.language) == (True, "en")
    rowless = _row_of(rows, mode_families["phone_no_consent_row"])
    assert (rowless.approval, rowless.language) == (False, None)
    retired = _row_of(rows, mode_families["phone_retired_consent"])
    assert (retired.approval, retired.language) == (False, None)


def test_it_fills_the_member_columns_only_when_the_head_has_no_valid_phone(tree: Tree) -> None:
    head_has_one = add_family(tree.v1, "Alpha", member_phones=(OTHER_VALID_PHONE,))
    second_member = add_family(tree.v1, "Bravo", head_phone=None, member_phones=(None, "", OTHER_VALID_PHONE))
    invalid_head = add_family(tree.v1, "Charlie", head_phone=INVALID_PHONE, member_phones=(VALID_PHONE,))
    nobody = add_family(tree.v1, "Delta", head_phone=None, member_phones=(INVALID_PHONE,))
    rows = build_report(ReportParams(area=tree.d1))

    row = _row_of(rows, head_has_one)
    assert (row.head_phone, row.member_other_names, row.member_phone) == (VALID_PHONE, None, None)
    assert row.sms_phone == "+255712345678"

    row = _row_of(rows, second_member)
    assert row.head_phone is None
    assert (row.member_other_names, row.member_last_name, row.member_phone) == ("Member3", "Bravo", OTHER_VALID_PHONE)
    assert row.sms_phone == "+255754000111"

    row = _row_of(rows, invalid_head)
    assert row.head_phone == INVALID_PHONE  # as stored: field staff see what is on file
    assert (row.member_other_names, row.member_phone) == ("Member1", VALID_PHONE)

    row = _row_of(rows, nobody)
    assert (row.head_phone, row.member_other_names, row.member_phone, row.sms_phone) == (None, None, None, None)


def test_it_gives_the_district_precedence_over_the_region(tree: Tree) -> None:
    in_d1 = add_family(tree.v1, "Bahi")
    in_d2 = add_family(tree.v4, "Kondoa")
    in_r2 = add_family(tree.v5, "Moshi")

    by_region = build_report(ReportParams.from_query({"regionUuid": str(tree.r1.uuid)}))
    assert _uuids(by_region) == {str(in_d1.uuid), str(in_d2.uuid)}

    both = build_report(ReportParams.from_query({"regionUuid": str(tree.r1.uuid), "districtUuid": str(tree.d2.uuid)}))
    assert _uuids(both) == {str(in_d2.uuid)}

    other_region = build_report(ReportParams.from_query({"regionUuid": str(tree.r2.uuid)}))
    assert _uuids(other_region) == {str(in_r2.uuid)}


def test_it_counts_only_families_with_a_current_policy_of_the_officer(tree: Tree, product: Product) -> None:
    mine, theirs = add_officer("EO1", tree.d1), add_officer("EO2", tree.d1)
    current = add_family(tree.v1, "Current")
    add_policy(current, product, mine)
    expired_but_current_row = add_family(tree.v1, "Expired")
    Policy.objects.filter(pk=add_policy(expired_but_current_row, product, mine).pk).update(status=Policy.Status.EXPIRED)
    handed_over = add_family(tree.v1, "Handed")
    policy = add_policy(handed_over, product, mine)
    policy.save_history()  # the history row keeps officer EO1; the current row moves to EO2
    policy.officer = theirs
    policy.save()
    deleted_policy = add_family(tree.v2, "Deleted")
    add_policy(deleted_policy, product, mine).retire()
    other_officer = add_family(tree.v2, "Other")
    add_policy(other_officer, product, theirs)
    add_family(tree.v3, "Uninsured")

    rows = build_report(ReportParams(area=tree.d1, officer=mine))
    assert _uuids(rows) == {str(current.uuid), str(expired_but_current_row.uuid)}
    assert Policy.objects.filter(family=handed_over, officer=mine).exists()  # the history row is really there
    assert len(build_report(ReportParams(area=tree.d1))) == 6
    assert _uuids(build_report(ReportParams(area=tree.d1, officer=theirs))) == {
        str(handed_over.uuid),
        str(other_officer.uuid),
    }


def test_it_lists_families_without_consent_row_or_full_location(tree: Tree, product: Product) -> None:
    officer_in_d1 = add_officer("EO1", tree.d1)
    officer_in_r2 = add_officer("EO9", tree.d3)
    rowless = add_family(tree.v1, "Rowless", approval=None)
    at_ward = add_family(tree.w2, "Wardonly")
    at_district = add_family(tree.d1, "Districtonly")
    nowhere_d1 = add_family(None, "Nowhere")
    add_policy(nowhere_d1, product, officer_in_d1)
    nowhere_elsewhere = add_family(None, "Elsewhere")
    add_policy(nowhere_elsewhere, product, officer_in_r2)
    add_family(None, "Unplaceable")  # no location, no policy: cannot be put in any area

    rows = build_report(ReportParams(area=tree.d1))
    assert _uuids(rows) == {str(f.uuid) for f in (rowless, at_ward, at_district, nowhere_d1)}
    row = _row_of(rows, rowless)
    assert (row.district, row.ward, row.village, row.approval, row.language) == (
        "D1 Bahi",
        "W1 Mjini",
        "V1 Mlimani",
        False,
        None,
    )
    assert (_row_of(rows, at_ward).ward, _row_of(rows, at_ward).village) == ("W2 Kati", UNKNOWN)
    assert (_row_of(rows, at_district).district, _row_of(rows, at_district).ward) == ("D1 Bahi", UNKNOWN)
    row = _row_of(rows, nowhere_d1)
    assert (row.district, row.ward, row.village) == (UNKNOWN, UNKNOWN, UNKNOWN)
    assert rows[-1] == row  # "unknown" groups come last

    region_rows = build_report(ReportParams(area=tree.r2, mode=Mode.APPROVAL_AND_PHONE))
    assert _uuids(region_rows) == {str(nowhere_elsewhere.uuid)}


def test_it_leaves_out_retired_families_and_members(tree: Tree) -> None:
    kept = add_family(tree.v1, "Kept")
    gone = add_family(tree.v1, "Gone")
    services.delete_family(gone.uuid)
    assert _uuids(build_report(ReportParams(area=tree.d1))) == {str(kept.uuid)}


def test_it_orders_by_district_ward_village_then_head_last_name(tree: Tree) -> None:
    add_family(tree.v4, "Aaron")  # D2
    add_family(tree.v3, "Zulu")  # D1 W2 V3
    add_family(tree.v2, "Mbwana")  # D1 W1 V2
    add_family(tree.v1, "Temba")  # D1 W1 V1
    add_family(tree.v1, "Kimaro", other_names="Zawadi")
    add_family(tree.v1, "Kimaro", other_names="Baraka")
    add_family(tree.v1, "Abdallah")
    rows = build_report(ReportParams(area=tree.r1))
    assert [(row.district, row.ward, row.village, row.head_last_name, row.head_other_names) for row in rows] == [
        ("D1 Bahi", "W1 Mjini", "V1 Mlimani", "Abdallah", "Amani"),
        ("D1 Bahi", "W1 Mjini", "V1 Mlimani", "Kimaro", "Baraka"),
        ("D1 Bahi", "W1 Mjini", "V1 Mlimani", "Kimaro", "Zawadi"),
        ("D1 Bahi", "W1 Mjini", "V1 Mlimani", "Temba", "Amani"),
        ("D1 Bahi", "W1 Mjini", "V2 Bondeni", "Mbwana", "Amani"),
        ("D1 Bahi", "W2 Kati", "V3 Mtoni", "Zulu", "Amani"),
        ("D2 Kondoa", "W3 Juu", "V4 Kisiwani", "Aaron", "Amani"),
    ]


@pytest.mark.parametrize("sparse_ids", [False, True], ids=["place rank", "place columns"])
def test_it_orders_places_with_ties_missing_levels_and_unknowns_as_the_six_place_columns(
    tree: Tree, product: Product, sparse_ids: bool
) -> None:
    """On PostgreSQL the places are sorted by one rank per location; the order must be the one of the six place
    columns (code, name of district, ward, village, NULLS LAST), equal places tied and broken by head name, a place
    without any level sorting with the families that have no location. With location ids spread too wide for
    the rank array the query sorts by the six columns themselves: both give the same order."""
    if sparse_ids:
        Location.objects.create(id=tree.v1.pk + _MAX_RANK_SPAN, code="X", name="Far", type="V", parent=tree.w3)
    assert (_Places().rank_array() is None) is sparse_ids
    twin = Location.objects.create(code="V1", name="Mlimani", type="V", parent=tree.w1)  # the same place as V1
    codeless = Location.objects.create(code=None, name="Aaa", type="V", parent=tree.w1)  # after V1, V2: no code
    officer = add_officer("EO1", tree.d1)
    add_family(tree.v1, "Zulu")
    add_family(twin, "Kimaro")
    add_family(tree.v1, "Abdallah")
    add_family(tree.v2, "Mbwana")
    add_family(codeless, "Aaron")
    add_family(tree.w1, "Wardonly")
    add_family(tree.v3, "Mtoni")
    add_family(tree.d1, "Districtonly")
    add_family(tree.v4, "Kondoa")
    add_family(tree.r1, "Bbb")  # a region has no district, ward or village: unknown, among the unplaced
    for name in ("Ccc", "Aaa"):
        add_policy(add_family(None, name), product, officer)

    rows = build_report(ReportParams(area=tree.r1))

    assert [(row.district, row.ward, row.village, row.head_last_name) for row in rows] == [
        ("D1 Bahi", "W1 Mjini", "V1 Mlimani", "Abdallah"),
        ("D1 Bahi", "W1 Mjini", "V1 Mlimani", "Kimaro"),
        ("D1 Bahi", "W1 Mjini", "V1 Mlimani", "Zulu"),
        ("D1 Bahi", "W1 Mjini", "V2 Bondeni", "Mbwana"),
        ("D1 Bahi", "W1 Mjini", "Aaa", "Aaron"),
        ("D1 Bahi", "W1 Mjini", UNKNOWN, "Wardonly"),
        ("D1 Bahi", "W2 Kati", "V3 Mtoni", "Mtoni"),
        ("D1 Bahi", UNKNOWN, UNKNOWN, "Districtonly"),
        ("D2 Kondoa", "W3 Juu", "V4 Kisiwani", "Kondoa"),
        (UNKNOWN, UNKNOWN, UNKNOWN, "Aaa"),
        (UNKNOWN, UNKNOWN, UNKNOWN, "Bbb"),
        (UNKNOWN, UNKNOWN, UNKNOWN, "Ccc"),
    ]


def test_it_labels_a_location_created_after_the_places_were_read(tree: Tree) -> None:
    places = _Places()
    late = Location.objects.create(code="V9", name="Mpya", type="V", parent=tree.w2)
    assert places.label_of(late.pk) == ("D1 Bahi", "W2 Kati", "V9 Mpya")
    assert places.label_of(tree.w3.pk) == ("D2 Kondoa", "W3 Juu", UNKNOWN)
    assert places.label_of(None) == (UNKNOWN, UNKNOWN, UNKNOWN)


def test_it_reports_more_than_a_hundred_families(tree: Tree) -> None:
    bulk_families(tree.v1, 130)
    bulk_families(tree.v4, 20)
    assert len(build_report(ReportParams(area=tree.r1))) == 150
    assert len(build_report(ReportParams(area=tree.d1, mode=Mode.APPROVAL_AND_PHONE))) == 130


def test_it_does_not_repeat_the_upstream_report_defects(tree: Tree, product: Product) -> None:
    """SPEC §13 item 10: upstream stopped at 100 families, crashed on a family without consent row or
    location, and returned families in no particular order."""
    names = [f"Name{index:03d}" for index in range(120)]
    bulk_families(tree.v1, 120, last_names=list(reversed(names)))  # inserted in reverse order of name
    rowless = add_family(tree.v1, "Name050b", approval=None)
    nowhere = add_family(None, "Aaaa")
    add_policy(nowhere, product, add_officer("EO1", tree.d1))

    rows = build_report(ReportParams(area=tree.d1))

    assert len(rows) == 122
    village_rows = [row for row in rows if row.village == "V1 Mlimani"]
    assert [row.head_last_name for row in village_rows] == sorted([*names, "Name050b"])
    assert _row_of(rows, rowless).approval is False
    assert rows[-1].family_uuid == str(nowhere.uuid)
    assert rows[-1].village == UNKNOWN


def test_it_runs_the_same_number_of_queries_for_10_and_1000_families(tree: Tree, product: Product) -> None:
    officer = add_officer("EO1", tree.d1)

    def count_queries(families: int) -> tuple[int, int]:
        created = bulk_families(tree.v1, families)
        Policy.objects.bulk_create(
            [
                Policy(
                    family=family,
                    product=product,
                    officer=officer,
                    status=Policy.Status.ACTIVE,
                    enroll_date=timezone.localdate(),
                    start_date=timezone.localdate(),
                )
                for family in created
            ]
        )
        params = ReportParams(area=tree.r1, mode=Mode.APPROVAL_AND_PHONE, officer=officer)
        with CaptureQueriesContext(connection) as queries:
            rows = build_report(params)
        Family.objects.filter(pk__in=[family.pk for family in created]).update(validity_to=timezone.now())
        return len(rows), len(queries)

    small_rows, small_queries = count_queries(10)
    large_rows, large_queries = count_queries(1000)
    assert (small_rows, large_rows) == (10, 1000)
    assert small_queries == large_queries == 2  # the places (one row per location), then the families
