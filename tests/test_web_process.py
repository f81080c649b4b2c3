"""bin/web as deployed: gunicorn serves the admin's static files (WhiteNoise) and answers a request that calls back
into the same server (the admin's test message through the fake gateway) within the gateway's own time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User

from notifier.models import FakeGatewayMessage, ProviderAccount
from tests.processes import free_port, kill_group, subprocess_database_url, wait_for

ROOT = Path(__file__).resolve().parent.parent


def _reachable(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_collected_static_files_and_a_test_message_to_itself(tmp_path, settings):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    static_root = tmp_path / "static"
    environment = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "NOTIFIER_VAR_DIR": str(tmp_path),
        "DJANGO_STATIC_ROOT": str(static_root),
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": "1",
        "NOTIFIER_ENABLE_TEST_SMS": "1",
        "PYTHON_BIN": str(Path(sys.executable).parent),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=120,
    )
    assert (static_root / "admin" / "css" / "base.css").is_file()
    User.objects.create_superuser("ops", "ops@example.org", "s3cret-pass")
    account = ProviderAccount.objects.create(
        name="fake ega",
        provider="eGASMSGateway",
        priority=1,
        config={
            "GateUrl": base,
            "SmsResource": "/api/policy_notification/test_sms/",
            "PrivateKey": "k3y",
            "UserId": "u1",
        },
    )
    log = (tmp_path / "web.log").open("wb")
    web = subprocess.Popen(
        [str(ROOT / "bin" / "web")], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _reachable(base + "/admin/login/"), timeout=60, what="gunicorn", process=web)
        css = requests.get(base + "/static/admin/css/base.css", timeout=5)
        assert css.status_code == 200
        assert css.headers["Content-Type"].startswith("text/css")
        assert "body" in css.text
        assert requests.get(base + "/static/admin/js/actions.js", timeout=5).status_code == 200

        session = requests.Session()
        login = session.get(base + "/admin/login/", timeout=5)
        assert '/static/admin/css/base.css"' in login.text
        token = session.cookies["csrftoken"]
        response = session.post(
            base + "/admin/login/?next=/admin/",
            data={"username": "ops", "password": "s3cret-pass", "csrfmiddlewaretoken": token},
            timeout=10,
        )
        assert response.status_code == 200
        send_test = f"{base}/admin/notifier/provideraccount/{account.pk}/send-test/"
        page = session.get(send_test, timeout=5)
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert found is not None
        started = time.monotonic()
        answer = session.post(
            send_test,
            data={"phone": "0712345678", "text": "Hello from the test", "csrfmiddlewaretoken": found.group(1)},
            headers={"Referer": send_test},
            timeout=30,
        )
        elapsed = time.monotonic() - started
        assert answer.status_code == 200
        assert "Fake ega: sent to +255712345678" in answer.text, re.findall(r"<li class=\"[a-z]+\">[^<]*", answer.text)
        assert elapsed < 5, f"the test message took {elapsed:.1f} s"
        assert FakeGatewayMessage.objects.filter(message="Hello from the test").count() == 1
    finally:
        kill_group(web)
        log.close()
