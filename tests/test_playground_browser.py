"""The playground in a real headless browser: Debian's Chromium driven by Selenium through Debian's
chromedriver (nothing downloaded). Open the page, type, watch the answer stream in, switch persona, and
keep a screenshot. The browser is killed whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.playground_harness import playground_env, running_playground, write_config
from tests.standins.egress_recorder import EgressRecorder
from tests.standins.model_server import Reply

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if os.path.exists(p)), None)
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
IN_CI = os.environ.get("CI") == "true"

if importlib.util.find_spec("selenium") is None:
    if IN_CI:
        raise RuntimeError("CI must install requirements-playground.txt: selenium is missing")
    pytest.skip("the playground's optional dependencies are not installed", allow_module_level=True)
if CHROMIUM is None or not os.path.exists(CHROMEDRIVER):
    if IN_CI:
        raise RuntimeError("CI must install Debian's chromium and chromium-driver (.ci/run does)")
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)

pytestmark = pytest.mark.timeout(150)

ANSWER = "Why did the cat sit on the computer? To keep an eye on the mouse!"
DOG_JOKE = "What do you call a dog magician? A labracadabrador."
PRICES = '[[usage.prices]]\nmodel = "test-model"\ninput_per_million = 0.75\noutput_per_million = 4.5\n'


@contextlib.contextmanager
def chromium(profile: Path, proxy: str) -> Iterator[Any]:
    """A headless Chromium; chromedriver runs in its own process group, which is killed at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        # Fewer of Chromium's own calls home (they would only reach the recorder anyway).
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--no-default-browser-check",
        "--no-pings",
        "--disable-features=AutofillServerCommunication,OptimizationHints,Translate,MediaRouter",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
        # Loopback is never proxied: anything else the browser asks for lands in a recorder.
        f"--proxy-server={proxy}",
    ):
        options.add_argument(flag)
    # DevTools' network events: every request the page itself makes (the browser's own are not the page's).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=options)
        yield driver
    finally:
        try:
            if driver is not None:
                driver.quit()
        finally:
            process = getattr(service, "process", None)
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def chat_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "chat").text


def type_message(driver: Any, message: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, "#message textarea")
    box.click()
    box.send_keys(message)
    box.send_keys(Keys.ENTER)


def page_requests(driver: Any, page: str) -> list[str]:
    """The URLs of every request the playground's page made (DevTools' Network.requestWillBeSent events
    whose document is the page; the browser's own start page and services are not the page's)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            params = message["params"]
            if params.get("documentURL", "").startswith(page):
                urls.append(params["request"]["url"])
    return urls


def browse(driver: Any, url: str, shot: Path) -> list[str]:
    """The person's part, in a thread (Selenium blocks). Returns the chat texts seen while streaming."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(url)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#message textarea"), "the message box")
    wait_until(lambda: "Today (UTC" in driver.find_element(By.ID, "costs").text, "the costs panel")
    type_message(driver, "tell me a joke about cats")
    seen: list[str] = []

    def answered() -> bool:
        seen.append(chat_text(driver))
        return ANSWER in seen[-1]

    wait_until(answered, "the streamed answer")
    wait_until(lambda: "out tokens" in driver.find_element(By.ID, "costs").text, "the turn's cost")

    picker = driver.find_element(By.CSS_SELECTOR, "#persona input")
    picker.click()
    picker.send_keys(Keys.CONTROL, "a")
    picker.send_keys("joker")
    picker.send_keys(Keys.ENTER)
    wait_until(lambda: "Persona joker" in driver.find_element(By.ID, "status").text, "the persona switch")
    type_message(driver, "dogs")
    wait_until(lambda: DOG_JOKE in chat_text(driver), "the answer as the joker")
    driver.save_screenshot(str(shot))
    return seen


LOCAL = ("http://127.0.0.1:", "data:", "blob:")


async def test_a_person_chats_and_switches_persona_in_chromium(
    tmp_path, model_server, redis_url, key_prefix, redis
) -> None:
    model_server.script(
        Reply(ANSWER, chunk_size=6, chunk_delay=0.15, usage=(120, 18)), Reply(DOG_JOKE, usage=(160, 14))
    )
    shot = tmp_path / "playground.png"
    async with (
        EgressRecorder() as egress,
        EgressRecorder() as browser_egress,
        running_playground(
            write_config(tmp_path, key_prefix, PRICES), playground_env(model_server, redis_url, egress)
        ) as playground,
    ):
        with chromium(tmp_path / "chromium-profile", browser_egress.url) as driver:
            seen = await asyncio.to_thread(browse, driver, playground.url, shot)
            requested = await asyncio.to_thread(page_requests, driver, playground.url)
        assert egress.attempts == [], f"the playground reached beyond loopback: {egress.attempts}"
    assert len(requested) > 5 and requested[0] == playground.url
    assert [url for url in requested if not url.startswith(LOCAL)] == [], "the page fetched from the internet"
    partial = [text for text in seen if "Why did the cat" in text and ANSWER not in text]
    assert partial, "the answer appeared all at once instead of streaming in"
    first, second = model_server.requests
    assert first.stream and first.messages[-1]["content"] == "tell me a joke about cats"
    assert "joke bot" in second.messages[0]["content"], "the joker's prompt reached the model"
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if copy_to := os.environ.get("PLAYGROUND_SCREENSHOT"):  # how docs/playground.png is made
        shutil.copyfile(shot, copy_to)
