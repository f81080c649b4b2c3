"""Shared fixtures: the fake gateway, and fixtures returning the small factories of tests/factories.py. Tests run
against the real PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from notifier import coordination, services
from notifier.models import Family, Location, Officer, Outbox, Policy, Product
from notifier.report.access import REPORT_GROUP
from tests import chaos_background
from tests.baseline import restore_migration_data
from tests.factories import ALL_TYPES_ON, APPROVED, TODAY, at, due_fields, ega_account, outbox_for
from tests.gateway import EGA_KEY, GatewayServer
from tests.report_helpers import Tree, build_tree, report_user

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


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    """Circuit breakers and rate limits (Redis, or process memory) are keyed by account id: none carries over."""
    coordination.reset()
    yield
    coordination.reset()


@pytest.fixture
def quick_delivery_settings(settings: Any, tmp_path: Path) -> None:
    """Short HTTP timeouts, three attempts and a breaker that opens after ten failures: the delivery tests' settings."""
    settings.VAR_DIR = tmp_path
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "http_connect_timeout_seconds": 0.5,
        "http_read_timeout_seconds": 0.3,
        "max_attempts": 3,
        "circuit_breaker": {"failure_threshold": 10, "window_seconds": 60, "cooldown_seconds": 30},
    }


@pytest.fixture
def viewer(db: None) -> Client:
    """A client signed in as a member of the report viewer group."""
    client = Client()
    client.force_login(report_user("viewer", group=REPORT_GROUP))
    return client


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    """A real HTTP server on 127.0.0.1 (port 0) standing in for an SMS gateway (tests/gateway.py)."""
    server = GatewayServer()
    yield server
    server.stop()


@pytest.fixture
def second_gateway() -> Iterator[GatewayServer]:
    """Another one: a fallback account's gateway, or the host someone points an account at to collect its secret."""
    server = GatewayServer()
    yield server
    server.stop()


@pytest.fixture
def ega_gateway(db: None) -> Iterator[GatewayServer]:
    """A gateway that refuses an eGA request whose signature does not verify, and the one eGA account using it."""
    server = GatewayServer(ega_key=EGA_KEY)
    ega_account("e2e eGA", server.url)
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


@pytest.fixture
def make_outbox(make_family: Callable[..., Family], make_policy: Callable[..., Policy]) -> Callable[..., Outbox]:
    """make_outbox(policy=None, notification_type=..., language="en", **fields): a row as detection writes it; without
    a policy, for a new consenting family's new policy."""

    def make(policy: Policy | None = None, *args: Any, **fields: Any) -> Outbox:
        if policy is None:
            policy = make_policy(make_family(consent={"approvalOfNotification": True, "languageOfNotification": "en"}))
        return outbox_for(policy, *args, **fields)

    return make


@pytest.fixture
def tree(db: None) -> Tree:
    """R1 Dodoma: D1 Bahi (W1: V1, V2; W2: V3), D2 Kondoa (W3: V4). R2 Kilimanjaro: D3 Moshi (W4: V5)."""
    return build_tree()


# --- detection: a pinned day, the types switched on, policies due ---------------------------------------------


@pytest.fixture
def clock(time_machine: Any) -> Any:
    """The clock stopped at noon of TODAY; move it with clock.move_to or run_on."""
    time_machine.move_to(at(TODAY, 12), tick=False)
    return time_machine


@pytest.fixture
def enable(settings: Any) -> Callable[..., None]:
    """enable(starting_of_policy=False, ...): all six types on, except those given."""

    def set_types(**flags: bool) -> None:
        settings.NOTIFIER = {**settings.NOTIFIER, "eligibleNotificationTypes": {**ALL_TYPES_ON, **flags}}

    set_types()
    return set_types


@pytest.fixture
def due(make_family: Callable[..., Family], make_policy: Callable[..., Policy]) -> Callable[..., Policy]:
    """due(type, event_date, family=None, **policy fields): a policy whose event date for the type is given."""

    def make(notification_type: str, event: dt.date, family: Family | None = None, **overrides: Any) -> Policy:
        family = family or make_family(consent=APPROVED)
        return make_policy(family, **due_fields(notification_type, event, **overrides))

    return make


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so a fixture (the browser's screenshot) knows the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# --- the chaos run, in the background from the start of the session (tests/chaos_background.py) -----------------

_CHAOS_KEY = pytest.StashKey[chaos_background.ChaosRun]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if any(Path(str(item.path)).name == "test_chaos.py" for item in session.items):
        session.config.stash[_CHAOS_KEY] = chaos_background.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_CHAOS_KEY, None)
    if run is not None:
        run.close()


@pytest.fixture
def chaos_run(request: pytest.FixtureRequest) -> chaos_background.ChaosRun:
    """The session's background chaos run (started now if the collection hook did not, e.g. under another runner)."""
    run = request.config.stash.get(_CHAOS_KEY, None)
    if run is None:
        run = request.config.stash[_CHAOS_KEY] = chaos_background.start()
    return run
