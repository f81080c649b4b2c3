"""Shared fixtures: small factories for the openIMIS mirror. Tests run against the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from notifier import services
from notifier.models import Family, Location, Officer, Policy, Product
from tests.baseline import restore_migration_data
from tests.gateway import GatewayServer

_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def _var_dir_of_its_own(settings: Any, tmp_path: Path) -> None:
    """Files a test makes (text provider output under a relative DestinationFolder) stay out of the checkout."""
    settings.VAR_DIR = tmp_path


@pytest.fixture(autouse=True)
def _no_quiet_hours_unless_asked(settings: Any, request: pytest.FixtureRequest) -> None:
    """Quiet hours (20:00-08:00 by default) would make a test's outcome depend on the hour it runs at: tests run
    without them, except those marked `quiet_hours`, which pin the clock (tests/test_quiet_hours.py)."""
    if request.node.get_closest_marker("quiet_hours") is None:
        settings.NOTIFIER = {**settings.NOTIFIER, "quiet_hours": None}


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """The dashboard keeps its month's aggregates in the cache for a minute: each test starts without them."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _migration_data_in_transactional_tests(request: pytest.FixtureRequest) -> None:
    """A transactional test starts from tables another one emptied, data migrations' rows included: put back the
    languages and shipped templates first (see tests/baseline.py)."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        request.getfixturevalue("transactional_db")
        restore_migration_data()


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    """A real HTTP server on 127.0.0.1 (port 0) standing in for an SMS gateway."""
    server = GatewayServer()
    yield server
    server.stop()


@pytest.fixture
def village(db: None) -> Location:
    region = Location.objects.create(code="R1", name="Region", type=Location.Type.REGION)
    district = Location.objects.create(code="D1", name="District", type=Location.Type.DISTRICT, parent=region)
    ward = Location.objects.create(code="W1", name="Ward", type=Location.Type.WARD, parent=district)
    return Location.objects.create(code="V1", name="Village", type=Location.Type.VILLAGE, parent=ward)


@pytest.fixture
def product(db: None) -> Product:
    return Product.objects.create(code="BASIC", name="Basic cover")


@pytest.fixture
def officer(db: None, village: Location) -> Officer:
    return Officer.objects.create(code="EO1", last_name="Mushi", other_names="Amani", location=village.parent)


@pytest.fixture
def make_family(db: None, village: Location) -> Callable[..., Family]:
    """make_family(head_phone=..., members=[phone, ...], consent={...} or None for no contribution)."""

    def make(
        head_phone: str | None = "0712345678",
        members: list[str | None] | None = None,
        consent: dict[str, Any] | None = None,
        location: Location | None = None,
    ) -> Family:
        number = next(_counter)
        people = [
            services.MemberData(
                chf_id=f"{number:06d}00", last_name=f"Head{number}", other_names="Amani", phone=head_phone, head=True
            )
        ]
        for index, phone in enumerate(members or []):
            people.append(
                services.MemberData(
                    chf_id=f"{number:06d}{index + 1:02d}", last_name=f"Head{number}", other_names="Neema", phone=phone
                )
            )
        contributions = None if consent is None else {services.CONTRIBUTION_KEY: consent}
        return services.create_family(people, location=location or village, contributions=contributions)

    return make


@pytest.fixture
def make_policy(db: None, product: Product) -> Callable[..., Policy]:
    def make(family: Family, **fields: Any) -> Policy:
        today = timezone.localdate()
        values: dict[str, Any] = {
            "product": product,
            "stage": Policy.Stage.NEW,
            "status": Policy.Status.ACTIVE,
            "enroll_date": today - dt.timedelta(days=30),
            "start_date": today - dt.timedelta(days=20),
            "effective_date": today - dt.timedelta(days=20),
            "expiry_date": today + dt.timedelta(days=345),
        }
        values.update(fields)
        return Policy.objects.create(family=family, **values)

    return make


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so a fixture (the browser's screenshot) knows the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
