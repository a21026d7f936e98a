"""Headless Debian Chromium driven by selenium (the driver from the package registry, pointed at
/usr/bin/chromium), with a fake camera for getUserMedia, and a polling helper for page state."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from xrserver.config import AnalyzerConfig, ServerConfig, StorageConfig, ThresholdsConfig
from xrserver.heatmaps import TwinReferenceHeatmaps
from xrserver.testing import scaled

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
Until = Callable[[str, float], Awaitable[object]]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):  # a test camera
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def until(browser: WebDriver) -> Until:
    """``await until(js, timeout_s)``: poll a script returning a truthy value, off the event loop."""

    async def poll(script: str, timeout_s: float) -> object:
        def check(d: WebDriver) -> object:
            return d.execute_script(script)

        try:
            return await asyncio.to_thread(WebDriverWait(browser, scaled(timeout_s), 0.3).until, check)
        except WebDriverException as e:
            status = browser.execute_script("return document.getElementById('conn')?.textContent")
            raise AssertionError(f"browser never satisfied `{script}` ({e.msg}); connection: {status}") from None

    return poll


def keep_screenshot(browser: WebDriver, folder: Path, name: str) -> Path:
    """Save what the user sees under the test's folder, and under ``$XR_ARTIFACTS`` when set."""
    shot = folder / name
    browser.save_screenshot(str(shot))
    if os.environ.get("XR_ARTIFACTS"):
        Path(os.environ["XR_ARTIFACTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(os.environ["XR_ARTIFACTS"]) / name)
    return shot


@pytest.fixture
def screenshot(browser: WebDriver, tmp_path: Path) -> Callable[[str], Path]:
    return lambda name: keep_screenshot(browser, tmp_path, name)


@pytest.fixture
def reference_config(tmp_path: Path) -> ServerConfig:
    """A server with the twin's golden-reference detector: it finds the twin's defects, so browser
    tests see real defects without training a model."""
    return ServerConfig(storage=StorageConfig(db_path=tmp_path / "r.db", cache_dir=tmp_path / "cache"),
                        analyzer=AnalyzerConfig(model="twin-reference", lut_step_m=0.05),
                        thresholds=ThresholdsConfig(score=TwinReferenceHeatmaps.FUSED_THRESHOLD))
