from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from notifier.demo import SCENARIOS, load_demo
from notifier.eligibility import Mode, filter_by_mode
from notifier.models import Family, FamilyNotification, FamilyPhone, Insuree, Location, Officer, Policy, Product

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 28, 7, 30, tzinfo=dt.UTC)  # 10:30 in Dar es Salaam, before the 12:00 run
TODAY = dt.date(2026, 11, 28)
MODE_LINE = re.compile(r"^\s+(\d) (.+?)\s+(\d+)$")


def scheme_snapshot() -> list[tuple[Any, ...]]:
    """The demo's content without ids or uuids: what must be equal for the same seed, day and clock."""
    families = []
    for family in Family.objects.current().select_related("location", "head_insuree").order_by("id"):
        members = tuple(
            Insuree.objects.filter(family=family)
            .order_by("id")
            .values_list("chf_id", "last_name", "other_names", "phone", "dob", "head", "validity_to")
        )
        consent = tuple(
            FamilyNotification.objects.filter(family=family).values_list("approval_of_sms", "language_of_sms")
        )
        policies = tuple(
            Policy.objects.filter(family=family)
            .order_by("id")
            .values_list(
                "product__code",
                "officer__code",
                "stage",
                "status",
                "enroll_date",
                "start_date",
                "effective_date",
                "expiry_date",
                "validity_from",
                "validity_to",
            )
        )
        location = family.location.code if family.location else None
        families.append((location, members, consent, policies))
    return families


def wipe_mirror() -> None:
    for model in (FamilyPhone, FamilyNotification, Policy, Insuree, Family, Officer, Product, Location):
        model.objects.all().delete()


@pytest.mark.django_db
def test_it_loads_the_same_scheme_for_the_same_seed() -> None:
    with time_machine.travel(NOW, tick=False):
        first = load_demo(today=TODAY, families=56, seed=7)
        snapshot = scheme_snapshot()
        wipe_mirror()  # the second load gets other ids: nothing may depend on them
        second = load_demo(today=TODAY, families=56, seed=7)
        again = scheme_snapshot()
        wipe_mirror()
        other_seed = load_demo(today=TODAY, families=56, seed=8)
        different = scheme_snapshot()

    assert first.created and second.created and other_seed.created
    assert len(snapshot) == 56
    assert again == snapshot
    assert different != snapshot


@pytest.mark.django_db
def test_it_is_idempotent() -> None:
    with time_machine.travel(NOW, tick=False):
        first = load_demo(today=TODAY, families=30)
        counts = (Family.objects.count(), Insuree.objects.count(), Policy.objects.count(), Location.objects.count())
        second = load_demo(today=TODAY, families=30)

    assert first.created and not second.created
    assert second.families == 30
    assert (Family.objects.count(), Insuree.objects.count(), Policy.objects.count(), Location.objects.count()) == (
        counts
    )


@pytest.mark.django_db
def test_it_loads_a_realistic_scheme_around_today() -> None:
    with time_machine.travel(NOW, tick=False):
        summary = load_demo(today=TODAY)

    assert summary.created and summary.families == 300
    assert set(summary.scenarios) == set(SCENARIOS)
    families = Family.objects.current()
    assert families.count() == 300

    # 2 regions -> districts -> wards -> villages; every family in a village
    locations = Counter(Location.objects.current().values_list("type", flat=True))
    assert locations[Location.Type.REGION] == 2
    assert all(locations[kind] >= locations[Location.Type.REGION] for kind in Location.Type.values)
    assert set(families.values_list("location__type", flat=True)) == {Location.Type.VILLAGE}
    assert Officer.objects.current().count() >= 2

    # 3 products, one with a conversion product
    assert Product.objects.current().count() == 3
    assert Product.objects.current().filter(conversion_product__isnull=False).count() == 1

    # 1-6 members, exactly one head each
    sizes = Counter(Insuree.objects.current().values_list("family_id", flat=True))
    assert set(sizes.values()) == {1, 2, 3, 4, 5, 6}
    heads = Counter(Insuree.objects.current().filter(head=True).values_list("family_id", flat=True))
    assert len(heads) == 300 and set(heads.values()) == {1}

    # phones: valid, blank, NULL and garbage all present
    phones = list(Insuree.objects.current().values_list("phone", flat=True))
    assert None in phones and "" in phones
    assert any(phone and re.fullmatch(r"0[67]\d{8}", phone) for phone in phones)
    assert any(phone and not re.search(r"\d{9}", phone.replace(" ", "")) for phone in phones)
    assert FamilyPhone.objects.count() < 300

    # consent in every combination and language, and some families without a row
    consent = Counter(FamilyNotification.objects.values_list("approval_of_sms", "language_of_sms"))
    assert set(consent) == {(approval, code) for approval in (True, False) for code in ("en", "fr", "sw")}
    without_row = families.exclude(notification__isnull=False).count()
    assert 0 < without_row < 60

    # every mode populated
    for mode in Mode:
        assert filter_by_mode(families, mode).exists(), mode

    # policies in every status and stage, with history rows
    current = Policy.objects.current()
    assert set(current.values_list("status", flat=True)) == set(Policy.Status.values)
    assert set(current.values_list("stage", flat=True)) == set(Policy.Stage.values)
    history = Policy.objects.filter(validity_to__isnull=False)
    assert history.exists()
    assert set(history.values_list("legacy_id", flat=True)) <= set(current.values_list("id", flat=True))
    assert set(history.values_list("status", flat=True)) == {Policy.Status.IDLE}


@pytest.mark.django_db
def test_it_places_a_due_candidate_of_each_notification_type_on_today() -> None:
    with time_machine.travel(NOW, tick=False):
        load_demo(today=TODAY)
    tz = timezone.get_current_timezone()
    start_of_today = dt.datetime.combine(TODAY, dt.time(0), tzinfo=tz)
    active = Policy.objects.current().filter(status=Policy.Status.ACTIVE)
    day = dt.timedelta(days=1)

    assert active.filter(stage=Policy.Stage.NEW, validity_from__gte=start_of_today).exists()  # activation
    assert active.filter(effective_date=TODAY).exists()  # starting
    assert active.filter(expiry_date=TODAY + 5 * day).exists()  # need_for_renewal
    assert active.filter(expiry_date=TODAY).exists()  # expiration
    expired = Policy.objects.current().filter(status=Policy.Status.EXPIRED)
    assert expired.filter(expiry_date=TODAY - 5 * day).exists()  # reminder_after_expiration
    assert active.filter(stage=Policy.Stage.RENEWAL, validity_from__gte=start_of_today).exists()  # renewal
    # activations within the catch-up window but before today are there too
    assert active.filter(
        stage=Policy.Stage.NEW, validity_from__lt=start_of_today, validity_from__gte=start_of_today - 3 * day
    ).exists()
    assert not Policy.objects.filter(validity_from__gt=NOW).exists()


def mode_table(output: str) -> dict[int, tuple[str, int]]:
    return {int(m[1]): (m[2], int(m[3])) for m in (MODE_LINE.match(line) for line in output.splitlines()) if m}


@pytest.mark.django_db
def test_it_prints_the_family_count_per_mode() -> None:
    out = io.StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("load_demo", "--families", "40", "--date", TODAY.isoformat(), stdout=out)
        call_command("load_demo", "--families", "40", stdout=(again := io.StringIO()))

    assert "Demo scheme loaded: 40 families" in out.getvalue()
    assert "already present (40 current families)" in again.getvalue()
    table = mode_table(out.getvalue())
    assert table == {
        0: ("All", 40),
        1: ("Approval and phone number", 26),
        2: ("Approval only", 2),
        3: ("Phone number only", 12),
        4: ("No approval and phone number", 0),
    }
    assert mode_table(again.getvalue()) == table


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "named"), [(["--date", "28/11/2026"], "--date"), (["--families", "0"], "--families")])
def test_it_refuses_bad_load_demo_arguments(args: list[str], named: str) -> None:
    with pytest.raises(CommandError, match=named):
        call_command("load_demo", *args, stdout=io.StringIO())
    assert not Family.objects.exists()


@pytest.mark.slow
def test_it_runs_the_demo_with_no_postgresql_or_redis_reachable(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
        and not key.startswith("PG")
    }
    # Anything that would still try PostgreSQL or Redis is pointed at closed ports.
    env.update(
        {
            "NOTIFIER_VAR_DIR": str(tmp_path),
            "PGHOST": "127.0.0.1",
            "PGPORT": "1",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "DJANGO_SETTINGS_MODULE": "project.settings",
        }
    )
    runs = [
        subprocess.run(
            [sys.executable, "manage.py", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        for _ in range(2)
    ]

    for run in runs:
        assert run.returncode == 0, run.stderr
        assert f"sqlite3 {tmp_path / 'notifier.sqlite3'}" in run.stdout
        assert "memory:// (embedded, in-process)" in run.stdout
    assert "Demo scheme loaded: 300 families" in runs[0].stdout
    assert "already present (300 current families)" in runs[1].stdout
    table = mode_table(runs[0].stdout)
    assert set(table) == {0, 1, 2, 3, 4}
    assert table[0][1] == 300 == sum(table[mode][1] for mode in (1, 2, 3, 4))
    assert all(table[mode][1] > 0 for mode in (1, 2, 3, 4))
    assert mode_table(runs[1].stdout) == table
    assert (tmp_path / "notifier.sqlite3").is_file()


def test_it_offers_the_two_commands_of_a_fresh_machine() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = dict(re.findall(r"^([a-z-]+):([^\n]*)$", makefile, flags=re.MULTILINE))
    assert "demo" in targets and "test" in targets
    assert re.search(r"^demo:.*\n\t.*manage\.py demo$", makefile, flags=re.MULTILINE)
    assert {"lint", "typecheck", "migrations-check", "pytest"} <= set(targets["test"].split())
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md not written yet")
    text = readme.read_text()
    assert "make demo" in text and "make test" in text
