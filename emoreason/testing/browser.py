"""Debian's chromium driven by selenium, for the page's browser tests and its screenshots.

    driver = launch_chromium(profile_dir, fake_audio="clip.wav")   # headless, fake microphone
    driver.get("http://127.0.0.1:8000/"); ...; save_screenshot(driver, "docs/images/page.png")

The flags keep chromium off the network (this machine's network is closed: without them it
retries Google's hosts at every start) and give it a microphone that plays ``fake_audio``.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDTH, HEIGHT = 960, 1400


def missing_browser() -> str | None:
    """Why the browser cannot run here (one line), or None when chromium, chromedriver and selenium are there."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver; scripts/setup.sh does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (a dev extra: pip install -e '.[dev]')"
    return None


def launch_chromium(profile_dir: str | Path, fake_audio: str | Path | None = None) -> Any:
    """A headless chromium (selenium WebDriver) with a fresh profile in ``profile_dir``; its fake
    microphone plays ``fake_audio`` (a WAV file; chromium's beep when None), permission granted."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
             f"--window-size={WIDTH},{HEIGHT}", "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile_dir}",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if fake_audio is not None:
        flags.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    for flag in flags:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages: see script_errors
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def script_errors(driver: Any) -> list[str]:
    """The page's uncaught script errors since the last call (console messages at SEVERE level,
    less failed requests, which the page reports itself)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]


def save_screenshot(driver: Any, path: str | Path, colors: int = 256) -> Path:
    """The whole page (``<main>``'s height, 600-2400 px) as a small PNG (``colors``-colour palette)."""
    from PIL import Image

    height = driver.execute_script("return document.querySelector('main').scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": min(max(int(height) + 16, 600), 2400), "deviceScaleFactor": 1, "mobile": False})
    try:
        img = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=colors).save(path, optimize=True)
    return path
