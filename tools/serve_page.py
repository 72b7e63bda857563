r"""Open skinlesion-serve's page in headless Chromium with the network blocked, upload an image, check, screenshot.

Starts ``skinlesion-serve MODEL_DIR`` on a free loopback port, opens ``/`` in Debian's ``chromium`` through
``chromium-driver`` (Selenium; no browser download), resolves every host but 127.0.0.1 to nothing, uploads
IMAGE with the page's file input, and waits for the answer. It prints one JSON line: the class the page
shows, whether the Grad-CAM overlay loaded, the malignant call's text, every URL the page requested (each
must be on the server), whether the file input is reached with the Tab key, and whether a phone-sized
window (390 px) needs sideways scrolling. tests/test_serve_browser.py runs it; the screenshot in docs/ is::

    python tools/serve_page.py models/headline ../shared/data/ham10000-224/mel/ISIC_0024310.jpg \
        --screenshot docs/serve-page.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)
DESKTOP = (1100, 900)


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(model_dir: str, port: int, timeout_s: float = 300, workers: int = 1):
    """``skinlesion-serve`` in a process of its own (``workers`` of them), until ``/health`` says ready."""
    command = [sys.executable, "-m", "skinlesion.serve.cli", model_dir, "--port", str(port), "--workers", str(workers)]
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    # Its log to a file, not a pipe: a pipe nobody reads fills up and would stop the server mid-run.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"skinlesion-serve exited: {log.read()[-2000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if json.load(answer)["status"] == "ready":
                        break
            if time.monotonic() > deadline:
                raise RuntimeError("skinlesion-serve did not become ready")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def browser():
    """Headless Chromium that resolves no host but loopback and records every request it makes."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"):
        options.add_argument(flag)
    # No network but this machine: any other host name resolves to nothing.
    options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for so far (Chromium's DevTools log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def tab_reaches_file_input(driver) -> bool:
    """Whether pressing Tab from the top of the page reaches the upload (keyboard use)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);")
    for _ in range(10):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        if driver.execute_script("return document.activeElement.id") == "file":
            return True
    return False


def check_page(url: str, image: Path, screenshot: Path | None = None, timeout_s: float = 120) -> dict:
    """Upload ``image`` on the page at ``url`` and read back what it shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        driver.set_window_size(*PHONE)
        driver.get(url + "/")
        WebDriverWait(driver, timeout_s).until(lambda d: "Loading" not in d.find_element(By.ID, "summary").text)
        keyboard = tab_reaches_file_input(driver)
        driver.find_element(By.ID, "file").send_keys(str(Path(image).resolve()))
        WebDriverWait(driver, timeout_s).until(
            lambda d: d.execute_script(
                "const o = document.getElementById('overlay'); return o.complete && o.naturalWidth > 0"
            )
        )
        sideways = driver.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
        shown = {
            "class": driver.find_element(By.ID, "top-class").get_attribute("data-class"),
            "status": driver.find_element(By.ID, "status").text,
            "call": driver.find_element(By.ID, "call").text,
            "summary": driver.find_element(By.ID, "summary").text,
            "overlay_width": driver.execute_script("return document.getElementById('overlay').naturalWidth"),
            "keyboard_reaches_upload": keyboard,
            "phone_scrolls_sideways": sideways,
            "urls": requested_urls(driver),
        }
        if screenshot is not None:
            driver.set_window_size(*DESKTOP)
            for _ in range(2):  # the window's height includes the browser's frame: grow it until nothing scrolls
                inner = driver.execute_script("return document.documentElement.scrollHeight - window.innerHeight")
                driver.set_window_size(DESKTOP[0], driver.get_window_size()["height"] + max(0, inner))
            driver.save_screenshot(str(screenshot))
        return shown
    finally:
        driver.quit()


def main() -> int:
    """Serve MODEL_DIR, check the page with IMAGE, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("image", type=Path)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    with server(args.model_dir, free_port()) as url:
        shown = check_page(url, args.image, args.screenshot)
    shown["offsite"] = [u for u in shown["urls"] if not u.startswith((url + "/", "data:", "blob:"))]
    print(json.dumps(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
