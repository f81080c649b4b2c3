"""The report streamed by a real WSGI server, outside a test transaction: as in production the server-side cursor is
declared in autocommit (WITH HOLD), and the rows are read after the view has returned, while the server writes."""

from __future__ import annotations

import csv
import gc
import io
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.db import connection
from django.utils import timezone

from notifier.report.access import REPORT_GROUP, create_token, ensure_report_permissions
from notifier.report.formats import json_chunks
from notifier.report.query import FETCH_ROWS, FIELDS, ReportParams, open_report
from tests.factories import bulk_families
from tests.report_helpers import build_tree

URL = "/api/policy_notification/communication_by_notification_report/"


@pytest.mark.django_db(transaction=True)
def test_a_real_server_streams_a_report_bigger_than_one_fetch_whole_and_in_order(live_server: Any) -> None:
    ensure_report_permissions()
    user = User.objects.create_user("api-client")
    user.groups.add(Group.objects.get(name=REPORT_GROUP))
    _, key = create_token(user)
    tree = build_tree()
    families = bulk_families(tree.v1, FETCH_ROWS + 5)
    expected = [str(family.uuid) for family in families]  # Bulk00000, Bulk00001, ...: the order of head names
    headers = {"Authorization": f"Token {key}"}
    query = {"districtUuid": str(tree.d1.uuid)}

    answer = requests.get(f"{live_server.url}{URL}", params=query, headers=headers, timeout=60)
    assert answer.status_code == 200
    assert "Content-Length" not in answer.headers  # streamed: the size is not known when the answer starts
    body = answer.json()
    assert body["count"] == len(body["rows"]) == FETCH_ROWS + 5
    assert [row["family_uuid"] for row in body["rows"]] == expected

    answer = requests.get(f"{live_server.url}{URL}", params={**query, "format": "csv"}, headers=headers, timeout=60)
    assert answer.status_code == 200
    assert "Content-Length" not in answer.headers
    records = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8"))))
    assert [record["family_uuid"] for record in records] == expected
    assert tuple(records[-1]) == FIELDS


def _cursors_held() -> list[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT is_holdable FROM pg_cursors")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_the_endpoint_reads_in_a_transaction_of_its_own_and_the_worker_with_a_held_cursor() -> None:
    """In autocommit Django declares the server-side cursor WITH HOLD, which makes PostgreSQL write the whole result
    out before the first fetch: the endpoint's rows are read inside a transaction that ends with them (exhausted,
    or closed when the client goes away); the worker, which writes its progress meanwhile, keeps the held cursor."""
    tree = build_tree()
    bulk_families(tree.v1, FETCH_ROWS + 5)
    params = ReportParams(area=tree.d1)
    assert connection.get_autocommit()

    report = open_report(params)
    assert connection.in_atomic_block
    assert _cursors_held() == [False]
    assert len(list(report.rows)) == FETCH_ROWS + 5
    assert not connection.in_atomic_block
    assert connection.get_autocommit()
    assert _cursors_held() == []

    chunks = json_chunks(params, open_report(params), timezone.localdate())
    next(chunks)
    next(chunks)  # the first fetch of rows went out; then the client goes away
    assert connection.in_atomic_block
    chunks.close()
    del chunks
    gc.collect()
    assert not connection.in_atomic_block
    assert _cursors_held() == []

    report = open_report(params, own_transaction=False)
    assert not connection.in_atomic_block
    assert _cursors_held() == [True]
    assert len(list(report.rows)) == FETCH_ROWS + 5
