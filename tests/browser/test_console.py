"""The console and the API docs in a real headless Chromium: sign in, search, open a
message and see the rendered mail, live updates, cancel a scheduled message, lift a
suppression, sign out; the
Swagger page renders its operations with no network but loopback. A screenshot of each
page goes to the test's temp dir (screens/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from services.capture import CaptureSink
from shared.settings import Settings
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import wait_for_event
from tests.integration.test_api_support import Api, start_api

pytestmark = pytest.mark.slow


@pytest.fixture
async def console_api(
    pipeline: Pipeline, settings: Settings, database_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    # data_dir = tmp_path: the console's capture inbox is the sink's folder
    server, api = await start_api(settings.model_copy(update={"data_dir": tmp_path}),
                                  database_url)  # fmt: skip
    yield api
    await api.client.aclose()
    await server.stop()


class Pages:
    def __init__(self, driver: webdriver.Chrome, base: str, shots: Path) -> None:
        self.driver, self.base, self.shots = driver, base, shots
        shots.mkdir(exist_ok=True)

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def wait(self, check: Callable[[webdriver.Chrome], Any], what: str, timeout: float = 20) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(check, what)

    def find(self, css: str) -> WebElement:
        try:
            found: WebElement = self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), css)
        except Exception:  # leave the evidence beside the screenshots
            self.shot("failed")
            (self.shots / "failed.html").write_text(self.driver.page_source)
            raise
        return found

    def texts(self, css: str) -> list[str]:
        """Read in one script call, so an htmx swap in between cannot stale an element."""
        script = "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)"
        return list(self.driver.execute_script(script, css))

    def errors(self) -> list[str]:
        """The browser's error-level log lines since the last call."""
        logs = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [str(e["message"]) for e in logs if e.get("level") == "SEVERE"]

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))


def _send(api: Api, headers: dict[str, str], name: str, **extra: str) -> str:
    body = {"to": f"{name} <{name.lower()}@example.com>", "template": "welcome",
            "vars": {"name": name}, "tags": ["signup"], **extra}  # fmt: skip
    response = httpx.post(f"{api.url}/v1/messages", json=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_console_in_a_browser(
    console_api: Api, projector: Projector, js: JetStreamContext, sink: CaptureSink,
    browser: webdriver.Chrome, tmp_path: Path,
) -> None:  # fmt: skip
    api = console_api
    admin = await api.key("admin", name="ops")
    sender = {"Authorization": f"Bearer {await api.key('send')}"}
    ids = [await asyncio.to_thread(_send, api, sender, name) for name in ("Alice", "Bob")]
    for message_id in ids:
        await wait_for_event(js, message_id, "delivered")
    carol = {"address": "carol@example.com", "reason": "manual"}
    suppressed = await api.client.post("/v1/suppressions", headers=sender, json=carol)
    assert suppressed.status_code == 202
    await sink.wait_for(2, timeout=10)
    await projector.caught_up(js)

    p = Pages(browser, api.url, tmp_path / "screens")
    await asyncio.to_thread(_sign_in, p, admin)
    await asyncio.to_thread(_search_and_open, p, ids[1])
    await asyncio.to_thread(_live_update, p, api, sender)
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    erin = await asyncio.to_thread(_send, api, sender, "Erin", send_at=send_at)
    await wait_for_event(js, erin, "scheduled")
    await projector.caught_up(js)
    await asyncio.to_thread(_cancel_scheduled, p, erin)
    await asyncio.to_thread(_lift_suppression, p)
    await asyncio.to_thread(_other_pages, p)
    await asyncio.to_thread(_sign_out, p)
    assert {f.name for f in p.shots.iterdir()} >= {
        "login.png", "messages.png", "search.png", "message.png", "suppressions.png",
        "scheduled.png", "cancelled.png", "lifted.png", "stats.png", "capture.png",
        "captured.png", "templates.png", "keys.png", "webhooks.png",
    }  # fmt: skip


def _sign_in(p: Pages, key: str) -> None:
    p.open("/console/messages")
    p.wait(lambda d: d.current_url.endswith("/console/login"), "redirect to sign-in")
    p.find("#api-key").send_keys("jp_wrong")
    p.find("#sign-in").click()
    assert "unknown or revoked" in p.find("#login-error").text
    p.shot("login")
    p.find("#api-key").send_keys(key)
    p.find("#sign-in").click()
    p.wait(lambda d: d.current_url.endswith("/console/messages"), "the message list")
    cookie = p.driver.get_cookie("jp_console")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    p.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.message-row")) == 2, "two rows")
    p.shot("messages")


def _search_and_open(p: Pages, bob: str) -> None:
    p.find("#filter-to").send_keys("bob@example.com")
    p.find("#search").click()
    p.wait(lambda d: p.texts("tr.message-row td:nth-child(3)") == ["bob@example.com"], "only Bob")
    assert "to=bob" in p.driver.current_url  # the search is in the address bar
    p.shot("search")
    p.find("tr.message-row a").click()
    p.wait(lambda d: d.current_url.endswith(f"/console/messages/{bob}"), "Bob's message")
    assert p.find("#message-status").text == "delivered"
    timeline = p.find("#timeline").text
    for event_type in ("accepted", "rendered", "attempted", "delivered"):
        assert event_type in timeline
    frame = p.find("#mail-frame")
    assert frame.get_attribute("sandbox") == ""
    p.driver.switch_to.frame(frame)
    p.wait(lambda d: "Bob" in d.find_element(By.TAG_NAME, "body").text, "the rendered mail")
    p.driver.switch_to.default_content()
    p.shot("message")


def _live_update(p: Pages, api: Api, sender: dict[str, str]) -> None:
    p.open("/console/messages")
    p.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.message-row")) == 2, "two rows")
    p.wait(lambda d: d.find_element(By.ID, "live-status").text.startswith("live"), "SSE open")
    dave = _send(api, sender, "Dave")
    p.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-id="{dave}"]'), "Dave live")


def _cancel_scheduled(p: Pages, erin: str) -> None:
    p.open(f"/console/messages/{erin}")
    assert p.find("#message-status").text == "scheduled"
    p.shot("scheduled")
    p.find("#cancel").click()
    p.wait(lambda d: d.current_url.endswith(f"/console/messages/{erin}?cancel=cancelled"),
           "the page again, after the cancel")  # fmt: skip
    assert p.find("#notice").text.startswith("cancelled")
    assert p.find("#message-status").text == "cancelled"  # from the log: no projection lag
    assert not p.driver.find_elements(By.ID, "cancel")  # nothing left to cancel
    p.shot("cancelled")


def _lift_suppression(p: Pages) -> None:
    p.open("/console/suppressions")
    row = p.find('tr.suppression-row[data-address="carol@example.com"]')
    assert "manual" in row.text
    p.shot("suppressions")
    row.find_element(By.CSS_SELECTOR, "button.lift").click()
    assert "lifted carol@example.com" in p.find("#notice").text
    p.shot("lifted")

    def gone(d: webdriver.Chrome) -> bool:
        d.get(p.base + "/console/suppressions")
        return not d.find_elements(By.CSS_SELECTOR, "tr.suppression-row")

    p.wait(gone, "the lifted suppression leaves the list")


def _other_pages(p: Pages) -> None:
    p.open("/console/stats")
    assert int(p.find("#stats-total").text) >= 3
    assert p.driver.find_elements(By.CSS_SELECTOR, "#chart-days svg rect")
    p.shot("stats")
    p.open("/console/capture")
    rows = p.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.captured-row a"), "captured")
    rows[-1].click()
    assert p.find("#envelope-to").text.endswith("@example.com")
    p.shot("captured")
    p.driver.back()
    p.shot("capture")
    p.open("/console/templates")
    p.find("section.template button").click()
    p.shot("templates")
    p.open("/console/keys")
    assert "ops" in p.find("table.list").text
    p.shot("keys")
    p.open("/console/webhooks")
    assert (
        p.find("h1").text == "Webhook endpoints" and "No webhook endpoints" in p.find("main").text
    )
    p.shot("webhooks")


def _sign_out(p: Pages) -> None:
    p.open("/console/messages")
    # no CSP refusal, no asset that failed to load, no script error, on any page so far
    wrong_key = "console/login - Failed to load resource: the server responded with a status of 401"
    assert [e for e in p.errors() if wrong_key not in e] == []
    p.find("#sign-out").click()
    p.wait(lambda d: d.current_url.endswith("/console/login"), "signed out")
    p.open("/console/messages")
    p.wait(lambda d: d.current_url.endswith("/console/login"), "the session is gone")


async def test_swagger_renders_offline(
    settings: Settings, database_url: str, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    server, api = await start_api(settings, database_url)  # the docs need no services
    try:
        await _swagger(api, browser, tmp_path)
    finally:
        await api.client.aclose()
        await server.stop()


async def _swagger(console_api: Api, browser: webdriver.Chrome, tmp_path: Path) -> None:
    p = Pages(browser, console_api.url, tmp_path / "screens")

    def check() -> None:
        p.open("/schema/swagger")
        p.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 5, "operations")
        paths = p.texts(".opblock-summary-path")
        assert "/v1/messages" in [s.replace("\u200b", "") for s in paths], paths
        loaded = p.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded and all(u.startswith(console_api.url) for u in loaded), loaded
        p.shot("swagger")
        assert p.errors() == []  # nothing failed to load, no script error

    await asyncio.to_thread(check)
