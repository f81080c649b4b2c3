"""docker-compose.attached.yml (parsed: no Docker engine here): the roles of docker-compose.yml without a postgres
service, pointed at the openIMIS database in attached mode, started only once migrate and the check passed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = {"migrate", "web", "worker", "beat", "flower"}


@pytest.fixture(scope="module")
def standalone() -> Any:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def attached() -> Any:
    return yaml.safe_load((ROOT / "docker-compose.attached.yml").read_text())


def test_it_has_the_same_roles_without_a_database_of_its_own(attached: Any) -> None:
    assert set(attached["services"]) == ROLES | {"redis"}
    assert set(attached["volumes"]) == {"redis-data", "notifier-var"}
    for name, service in attached["services"].items():
        assert "postgres" not in service.get("depends_on", {}), name
        assert not str(service.get("image", "")).startswith("postgres"), name


def test_every_role_runs_attached_on_the_given_database(attached: Any) -> None:
    for name in ROLES:
        environment = attached["services"][name]["environment"]
        assert environment["DATABASE_URL"].startswith("${DATABASE_URL:?"), name
        assert environment["OPENIMIS_MODE"] == "attached", name
        assert environment["NOTIFIER_DB_SCHEMA"] == "${NOTIFIER_DB_SCHEMA:-notifier}", name
        assert environment["OPENIMIS_DB_SCHEMA"] == "${OPENIMIS_DB_SCHEMA:-public}", name


def test_migrate_then_the_check_gate_the_roles(attached: Any) -> None:
    services = attached["services"]
    assert services["migrate"]["command"] == [
        "sh",
        "-c",
        "python manage.py migrate --noinput && python manage.py check --database default",
    ]
    for name in ROLES - {"migrate"}:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name


def test_the_roles_are_those_of_the_standalone_file(standalone: Any, attached: Any) -> None:
    """Apart from the database, the two files must not drift apart."""
    ignored = {"DATABASE_URL", "OPENIMIS_MODE", "NOTIFIER_DB_SCHEMA", "OPENIMIS_DB_SCHEMA"}
    for name in ROLES - {"migrate"}:
        ours, theirs = attached["services"][name], standalone["services"][name]
        assert ours["command"] == theirs["command"], name
        assert ours.get("healthcheck") == theirs.get("healthcheck"), name
        assert ours.get("ports") == theirs.get("ports"), name
        assert {k: v for k, v in ours["environment"].items() if k not in ignored} == {
            k: v for k, v in theirs["environment"].items() if k not in ignored
        }, name
    assert attached["services"]["redis"] == standalone["services"]["redis"]
