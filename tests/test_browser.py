"""The admin in a real browser (headless Chromium from Debian, driven by Selenium) against a live server: sign in,
the dashboard's charts, a template's preview, UCS-2 warning and refusal, a test message, a resend, a PDF report.

A failing test leaves a screenshot and the page source under $NOTIFIER_ARTIFACTS_DIR (default var/artifacts).
NOTIFIER_UPDATE_SCREENSHOTS=1 also writes the README's screenshots (docs/screenshots/)."""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from pypdf import PdfReader
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from notifier.models import FakeGatewayMessage, NotificationTemplate, Outbox, ProviderAccount
from tests.factories import bare_outboxes
from tests.report_helpers import add_family, build_tree

ROOT = Path(__file__).resolve().parent.parent
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1366,900",
]
PASSWORD = "browser-pass-1"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("NOTIFIER_ARTIFACTS_DIR") or ROOT / "var" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def browser(request: pytest.FixtureRequest, downloads: Path) -> Iterator[WebDriver]:
    if not os.path.exists(CHROMEDRIVER):
        message = f"{CHROMEDRIVER} missing: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            stem = artifacts_dir() / re.sub(r"[^\w.-]+", "_", request.node.name)
            driver.save_screenshot(f"{stem}.png")
            Path(f"{stem}.html").write_text(driver.page_source, encoding="utf-8")
        driver.quit()


@pytest.fixture
def operator(db: None) -> User:
    return User.objects.create_superuser("operator", "ops@example.org", PASSWORD)


def wait(driver: WebDriver, seconds: float = 15) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, seconds)


def sign_in(driver: WebDriver, base: str) -> None:
    driver.get(base + "/admin/")
    driver.find_element(By.NAME, "username").send_keys("operator")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(driver).until(expected_conditions.presence_of_element_located((By.ID, "dashboard")))


def screenshot_for_readme(driver: WebDriver, name: str) -> None:
    if os.environ.get("NOTIFIER_UPDATE_SCREENSHOTS") == "1":
        page_height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1366, min(int(page_height or 900), 2000))
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(target / f"{name}.png"))
        from PIL import Image  # reportlab's dependency; a 256-colour PNG keeps the committed files small

        with Image.open(target / f"{name}.png") as image:
            image.convert("RGB").quantize(colors=256).save(target / f"{name}.png", optimize=True)
        driver.set_window_size(1366, 900)


def illustrate_a_month() -> None:
    """A month of traffic for the README's screenshot (not asserted on)."""
    import datetime as dt
    import random

    from django.utils import timezone

    from notifier.models import ForecastDay
    from notifier.types import NOTIFICATION_TYPES

    rng = random.Random(7)
    rows = bare_outboxes(240)
    now = timezone.now()
    for index, row in enumerate(rows):
        status = rng.choices(["sent", "failed", "unknown", "pending"], weights=[90, 4, 2, 4])[0]
        Outbox.objects.filter(pk=row.pk).update(
            notification_type=NOTIFICATION_TYPES[index % 6],
            status=status,
            created_at=now - dt.timedelta(days=rng.randrange(30), hours=rng.randrange(8)),
            last_error="HTTP 503 from the gateway" if status in {"failed", "unknown"} else "",
        )
    today = timezone.localdate()
    ProviderAccount.objects.create(name="eGA", provider="eGASMSGateway", price_per_segment="18.5", currency="TZS")
    for offset in range(30):
        for index, name in enumerate(NOTIFICATION_TYPES):
            count = rng.randrange(0, 12) if index % 2 == offset % 2 else 0
            ForecastDay.objects.create(
                day=today + dt.timedelta(days=offset), notification_type=name, messages=count, segments=count
            )


def test_sign_in_and_see_the_dashboard_charts_styled(browser: WebDriver, live_server: Any, operator: User) -> None:
    first, *_rest = bare_outboxes(3)
    Outbox.objects.filter(pk=first.pk).update(status="failed", last_error="HTTP 502")
    Outbox.objects.exclude(status="failed").update(status="sent")
    sign_in(browser, live_server.url)
    assert browser.title == "Dashboard | Policy notifier"
    chart = browser.find_element(By.CSS_SELECTOR, "svg#history")
    assert chart.size["width"] > 400
    bars = browser.find_elements(By.CSS_SELECTOR, "svg#history rect.bar")
    assert len(bars) == 2  # today's sent and failed stacks
    assert browser.find_element(By.CSS_SELECTOR, "svg#forecast").is_displayed()
    # The admin's stylesheet arrived: the header has the admin's colours, not the browser's default white.
    header = browser.find_element(By.ID, "header")
    assert header.value_of_css_property("background-color") not in {"rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"}
    sections = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "#content-main caption a")]
    assert sections[:3] == ["CONSENT & FAMILIES", "MESSAGES & TEMPLATES", "DELIVERY"] or sections[:3] == [
        "Consent & families",
        "Messages & templates",
        "Delivery",
    ]
    if os.environ.get("NOTIFIER_UPDATE_SCREENSHOTS") == "1":
        illustrate_a_month()
        browser.refresh()
        screenshot_for_readme(browser, "dashboard")
    browser.get(live_server.url + "/admin/notifier/outbox/")
    assert browser.find_element(By.CSS_SELECTOR, "span.badge.status-failed").text == "Failed"
    # Every column fits beside the navigation and the filters at 1,366 px: no horizontal scrolling.
    overflow = browser.execute_script(
        "const t = document.getElementById('result_list'); const c = t.parentElement;"
        "return [t.scrollWidth, c.clientWidth, document.documentElement.scrollWidth, window.innerWidth];"
    )
    assert overflow[0] <= overflow[1] and overflow[2] <= overflow[3], overflow
    screenshot_for_readme(browser, "outbox")


def test_edit_a_template_see_the_preview_the_ucs2_warning_and_a_refusal(
    browser: WebDriver, live_server: Any, operator: User
) -> None:
    template = NotificationTemplate.objects.get(notification_type="expiration_of_policy", language_id="en")
    sign_in(browser, live_server.url)
    browser.get(f"{live_server.url}/admin/notifier/notificationtemplate/{template.pk}/change/")
    preview = browser.find_element(By.ID, "preview-text")
    wait(browser).until(lambda driver: preview.text.strip() != "")
    text = browser.find_element(By.ID, "id_text")
    text.clear()
    text.send_keys("Dear {Name}, your policy {InsuranceID} ends on {ExpiryDate} \u2019renew\u2019.")
    warning = browser.find_element(By.ID, "ucs2-warning")
    wait(browser).until(lambda driver: warning.is_displayed())
    assert warning.text.startswith("\u26a0 UCS-2:")
    assert "70 characters instead of 160" in warning.text
    assert warning.value_of_css_property("color") == "rgba(183, 28, 28, 1)"
    wait(browser).until(lambda driver: "renew" in preview.text)
    screenshot_for_readme(browser, "template")

    text.clear()
    text.send_keys("Dear {Nmae}, renew now.")
    browser.find_element(By.NAME, "_continue").click()
    error = wait(browser).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".errorlist")))
    assert "Nmae" in error.text
    template.refresh_from_db()
    assert "Nmae" not in template.text


def test_send_a_test_message_through_the_fake_gateway(
    browser: WebDriver, live_server: Any, operator: User, settings: Any
) -> None:
    settings.NOTIFIER_ENABLE_TEST_SMS = True
    account = ProviderAccount.objects.create(
        name="fake ega",
        provider="eGASMSGateway",
        priority=1,
        config={
            "GateUrl": live_server.url,
            "SmsResource": "/api/policy_notification/test_sms/",
            "PrivateKey": "k3y",
            "UserId": "u1",
        },
    )
    sign_in(browser, live_server.url)
    browser.get(f"{live_server.url}/admin/notifier/provideraccount/{account.pk}/change/")
    browser.find_element(By.LINK_TEXT, "Send a test message").click()
    browser.find_element(By.NAME, "phone").send_keys("0712 345 678")
    browser.find_element(By.NAME, "text").clear()
    browser.find_element(By.NAME, "text").send_keys("Browser test message")
    started = time.monotonic()
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Send]").click()
    success = wait(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success"))
    )
    assert time.monotonic() - started < 10
    assert success.text.startswith("Fake ega: sent to +255712345678 (reference test-sms-")
    assert list(FakeGatewayMessage.objects.values_list("recipients", "message")) == [
        ("255712345678", "Browser test message")  # eGA takes the digits without the plus
    ]


def test_resend_a_failed_message_from_the_dashboard(browser: WebDriver, live_server: Any, operator: User) -> None:
    [row] = bare_outboxes(1)
    Outbox.objects.filter(pk=row.pk).update(status="failed", attempts=5, last_error="<h1>503 Service Unavailable</h1>")
    sign_in(browser, live_server.url)
    line = browser.find_element(By.ID, f"attention-{row.pk}")
    assert "503 Service Unavailable" in line.text and "<h1>" not in line.text
    line.find_element(By.CSS_SELECTOR, "button.resend").click()
    message = wait(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success"))
    )
    assert message.text == f"Message #{row.pk} queued again; the sweeper sends it shortly."
    assert browser.find_elements(By.ID, f"attention-{row.pk}") == []
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)


def test_download_a_pdf_report(browser: WebDriver, live_server: Any, operator: User, downloads: Path) -> None:
    tree = build_tree()
    add_family(tree.v1, "Mushi", head_phone="0712345678")
    add_family(tree.v3, "Kimaro", head_phone=None, member_phones=("0754000111",))
    sign_in(browser, live_server.url)
    browser.get(live_server.url + "/admin/notifier/notificationreport/")
    Select(browser.find_element(By.NAME, "district")).select_by_visible_text(str(tree.d1))
    Select(browser.find_element(By.NAME, "format")).select_by_value("pdf")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # A PDF is produced by a worker: a page shows its progress, then the download link.
    link = wait(browser, 30).until(expected_conditions.element_to_be_clickable((By.ID, "report-download")))
    assert browser.find_element(By.ID, "report-status").text == "Ready"
    link.click()

    def downloaded() -> list[Path]:
        return [path for path in downloads.glob("*.pdf") if path.stat().st_size > 0]

    files = wait(browser, 30).until(lambda driver: downloaded())
    [pdf] = files
    reader = PdfReader(io.BytesIO(pdf.read_bytes()))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Family policy notification report" in text
    assert "Mushi" in text and "Kimaro" in text
