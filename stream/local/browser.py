"""Headless Chromium for the wall: Debian's ``chromium`` and ``chromium-driver``, installed when missing.

Used by the browser test (tests/stream/worker/wall) and by ``make wall-screenshot``, which takes ``docs/wall.png`` from a
running demo:

    python -m stream.local.browser screenshot [--url http://127.0.0.1:6066/wall] [--out docs/wall.png]

Selenium (the ``dev`` extra) drives Chromium through chromium-driver. The flags keep Chromium off the
network it would otherwise call home to (a closed network refuses those connections).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stream.local.promstack import _which, apt_install

DEBIAN_PACKAGES = ("chromium", "chromium-driver")
WIDTH, HEIGHT = 1920, 1080
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}")


def ensure_chromium() -> tuple[str, str]:
    """(chromium, chromedriver) paths; installs the Debian packages when either is missing."""
    found = _which("chromium"), _which("chromedriver")
    if None in found:
        apt_install(DEBIAN_PACKAGES, "Chromium/chromedriver")
        found = _which("chromium"), _which("chromedriver")
    if None in found:
        raise RuntimeError(f"chromium or chromedriver not found after installing {' '.join(DEBIAN_PACKAGES)}")
    return found  # type: ignore[return-value]


@contextlib.contextmanager
def chromium(width: int = WIDTH, height: int = HEIGHT) -> Iterator[Any]:
    """A Selenium driver of a fresh headless Chromium whose viewport is exactly width x height."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="kpi-wall-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            # The viewport, not the window: what a TV in kiosk mode shows.
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            yield driver
        finally:
            driver.quit()


def wait_until(driver: Any, script: str, timeout: float = 20.0) -> Any:
    """Poll a JavaScript expression until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {script}")
        time.sleep(0.2)


def screenshot(url: str, out: Path, settle_s: float = 3.0) -> Path:
    """A picture of the wall once it is live and painted (tiles, leaderboard, trend)."""
    with chromium() as driver:
        driver.get(url)
        wait_until(driver, "document.getElementById('freshness-state').textContent === 'live' && "
                           "document.querySelector('#trend path') !== null", timeout=60)
        time.sleep(settle_s)  # a refresh or two: the numbers settle, the fonts have fitted
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shot = sub.add_parser("screenshot", help="take a picture of a running wall")
    shot.add_argument("--url", default="http://127.0.0.1:6066/wall")
    shot.add_argument("--out", type=Path, default=Path("docs/wall.png"))
    sub.add_parser("install", help="install chromium and chromium-driver when missing")
    args = parser.parse_args(argv)
    if args.command == "install":
        print("chromium: %s, chromedriver: %s" % ensure_chromium())
        return 0
    try:
        print(f"wrote {screenshot(args.url, args.out)}")
    except TimeoutError as exc:
        print(f"the wall at {args.url} did not come live: {exc} (is `make demo` running?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
