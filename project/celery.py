from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("notifier")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _persistent_connections(**_: Any) -> None:
    """In a worker (before the pool forks), database connections without a CONN_MAX_AGE of their own live for
    NOTIFIER_WORKER_CONN_MAX_AGE seconds and are health-checked before their first use in each task: a chunk of
    deliveries no longer pays a new PostgreSQL connection (one per task before: 402 connections for 400 chunks)."""
    from django.db import connections

    from notifier.settings import get_settings

    age = get_settings().worker_conn_max_age
    if age <= 0:
        return
    for database in connections.settings.values():
        if not database.get("CONN_MAX_AGE"):
            database["CONN_MAX_AGE"] = age
            database["CONN_HEALTH_CHECKS"] = True


@task_prerun.connect
@task_postrun.connect
def _recycle_connections(sender: Any = None, **_: Any) -> None:
    """What Django does around a request: close a connection that is broken, in a transaction left open or past
    its age; the next use of a kept one checks it first (CONN_HEALTH_CHECKS). Not for a task run in-process (eager):
    its caller's connection and transaction are not the task's to close."""
    from django.db import connections

    if sender is None or getattr(sender.request, "is_eager", False):
        return
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
