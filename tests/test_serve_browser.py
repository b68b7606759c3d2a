"""End-to-end: the real server (`fipviton serve` on a free loopback port) driven by headless Chromium.

Chromium and chromedriver are Debian's (`make test` installs them as root; see the Makefile's `browser` target),
driven with selenium. Without them the tests skip and say why, except under CI=true, where they must run.
Screenshots go to $FIPVITON_SCREENSHOTS (default: pytest's temporary folder); their paths are printed.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from fipviton.examples import example_pairs
from server_process import ServerProcess

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

pytestmark = pytest.mark.slow

PAIR = example_pairs()[1]
STATES_JS = """
window.__states = [];
new MutationObserver(() => window.__states.push(document.getElementById('status').dataset.state))
  .observe(document.getElementById('status'), {attributes: true, attributeFilter: ['data-state']});
"""


def _require_browser() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    problem = None
    if not (chromium and driver):
        problem = "chromium/chromedriver not installed (`make test` installs them: apt-get as root)"
    else:
        try:
            import selenium  # noqa: F401
        except ImportError:
            problem = "selenium not installed (pip install -e '.[dev]')"
    if problem:
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(f"{problem}; under CI the browser test must run")
        pytest.skip(problem)
    return str(chromium), str(driver)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _require_browser()
    folder = tmp_path_factory.mktemp("serve")
    args = ["--queue-size", "2", "--log-level", "warning"]
    with ServerProcess(args, folder / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def browser(server: ServerProcess) -> Iterator[Chrome]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # Root in a container: Chromium's sandbox cannot start; /dev/shm may be tiny.
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit chromedriver path: selenium then never tries to download one.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("FIPVITON_SCREENSHOTS", tmp_path_factory.mktemp("screenshots")))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser: Chrome, server: ServerProcess) -> None:
    browser.get(server.url + "/")
    browser.execute_script(STATES_JS)


def wait_for_end(browser: Chrome, timeout_s: float = 90.0) -> str:
    """Wait until the status is done or error; returns that state."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout_s, poll_frequency=0.1).until(
        lambda d: d.find_element("id", "status").get_attribute("data-state") in ("done", "error")
    )
    return browser.find_element("id", "status").get_attribute("data-state")


def full_page_screenshot(browser: Chrome, path: Path) -> Path:
    """The whole page, below the fold included (Chrome DevTools Protocol through chromedriver)."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


def console_errors(browser: Chrome) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_upload_two_photos_and_see_the_result(browser: Chrome, server: ServerProcess, shots: Path) -> None:
    open_page(browser, server)
    assert browser.find_element("id", "submit").get_attribute("disabled") is not None  # nothing chosen yet
    browser.find_element("id", "person-input").send_keys(str(PAIR.person))
    browser.find_element("id", "garment-input").send_keys(str(PAIR.garment))
    browser.find_element("css selector", "input[name=category][value=upper_body]").click()
    browser.find_element("id", "submit").click()

    state = wait_for_end(browser)
    status = browser.find_element("id", "status-text").text
    assert state == "done", status
    assert status.startswith("Done in")
    seen = browser.execute_script("return window.__states")
    assert "uploading" in seen and "processing" in seen, seen  # the progress state was shown
    natural = browser.execute_script(
        "const i = document.getElementById('result-image'); return [i.complete, i.naturalWidth, i.naturalHeight]"
    )
    assert natural == [True, *Image.open(PAIR.person).size]
    maps = browser.execute_script(
        "return [...document.querySelectorAll('#maps img')].map(i => [i.alt, i.complete && i.naturalWidth > 0])"
    )
    assert len(maps) >= 8 and all(ok for _, ok in maps), maps
    assert {"parsing", "warped"} <= {name for name, _ in maps}
    assert browser.find_element("id", "timings").text  # per-stage timings are listed
    full_page_screenshot(browser, shots / "serve_browser_result.png")
    assert console_errors(browser) == []


def test_pick_examples_and_try_on(browser: Chrome, server: ServerProcess, shots: Path) -> None:
    open_page(browser, server)
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: len(d.find_elements("css selector", "#person-examples button")) > 0)
    browser.find_elements("css selector", "#person-examples button")[2].click()
    browser.find_elements("css selector", "#garment-examples button")[2].click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element("id", "submit").is_enabled())
    assert "example" in browser.find_element("id", "person-name").text
    browser.find_element("id", "submit").click()
    assert wait_for_end(browser) == "done", browser.find_element("id", "status-text").text
    assert browser.execute_script("return document.getElementById('result-image').naturalWidth") > 0
    full_page_screenshot(browser, shots / "serve_browser_examples.png")
    # The same pair again with "sharp garment detail" ticked: the server sends another picture.
    plain = browser.find_element("id", "result-image").get_attribute("src")
    browser.find_element("id", "sharp-garment").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element("id", "submit").is_enabled())
    browser.find_element("id", "submit").click()
    assert wait_for_end(browser) == "done", browser.find_element("id", "status-text").text
    sharp = browser.find_element("id", "result-image").get_attribute("src")
    assert sharp != plain
    # Sharp off, "average with the mirror image" on: a third picture.
    browser.find_element("id", "sharp-garment").click()
    browser.find_element("id", "mirror-average").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element("id", "submit").is_enabled())
    browser.find_element("id", "submit").click()
    assert wait_for_end(browser) == "done", browser.find_element("id", "status-text").text
    assert browser.find_element("id", "result-image").get_attribute("src") not in (plain, sharp)


def test_bad_upload_shows_the_servers_message(
    browser: Chrome, server: ServerProcess, tmp_path: Path, shots: Path
) -> None:
    open_page(browser, server)
    fake = tmp_path / "holiday.jpg"
    fake.write_bytes(b"this is a text file with a .jpg name\n" * 10)
    browser.find_element("id", "person-input").send_keys(str(fake))
    browser.find_element("id", "garment-input").send_keys(str(PAIR.garment))
    browser.find_element("id", "submit").click()
    assert wait_for_end(browser) == "error"
    text = browser.find_element("id", "status-text").text
    assert "person: not an image file" in text, text
    assert browser.find_element("id", "submit").is_enabled()  # the user can try again
    full_page_screenshot(browser, shots / "serve_browser_error.png")


def test_page_starts_from_the_servers_defaults(browser: Chrome, tmp_path: Path) -> None:
    """A server started with --mirror-average: the page ticks that box from /healthz's defaults (it always sends
    both mode fields, so an unticked box would override the server's setting)."""
    from selenium.webdriver.support.ui import WebDriverWait

    args = ["--mirror-average", "--no-warmup", "--log-level", "warning"]
    with ServerProcess(args, tmp_path / "server.log") as mirrored:
        open_page(browser, mirrored)
        WebDriverWait(browser, 20).until(lambda d: d.find_element("id", "mirror-average").is_selected())
        assert not browser.find_element("id", "sharp-garment").is_selected()
