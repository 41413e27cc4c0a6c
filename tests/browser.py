"""A headless Chromium driven by Selenium for the tests of the annotation and search pages, and a page's
server run as the user runs it (``tools/annotate_viewpoints.py``, ``tools/search_server.py``, each in its own
process). Where no browser is installed the tests that need one are skipped, saying what to install."""
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
# Flags for a headless browser in a container without a display, sandbox user namespaces or network.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def browser_or_skip():
    """(chromium, chromedriver) paths, or skip the test saying what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("the browser tests need selenium: pip install -e '.[test]'")
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("the browser tests need Chromium and its driver on PATH (Debian: apt-get install chromium "
                    f"chromium-driver); found browser {chromium or 'none'}, driver {driver or 'none'}")
    return chromium, driver


@contextlib.contextmanager
def chromium(width=1000, height=800):
    """A headless Chromium (Selenium WebDriver) with a fresh profile, quit at the end."""
    binary, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def start_page(tool, *args, env=None):
    """``tools/<tool>.py *args --port 0`` in its own process, a page's server that prints one line and then
    ``open URL ...``: (process, url, first lines)."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", f"{tool}.py"), *args, "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))
    lines = [proc.stdout.readline(), proc.stdout.readline()]
    if not lines[1].startswith("open "):
        proc.kill()
        raise AssertionError(f"{tool}.py did not start: {lines} {proc.communicate()[1][-2000:]}")
    return proc, lines[1].split()[1], lines


def start_annotation(*args, env=None):
    """``tools/annotate_viewpoints.py *args --port 0`` in its own process: (process, url, first lines)."""
    return start_page("annotate_viewpoints", *args, env=env)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    if proc.stdout:
        proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()


class Page:
    """The annotation page in the browser: what it shows, and keys pressed one at a time, each waiting
    for the page to show its result (a key pressed before the next image is shown is dropped, by design)."""

    def __init__(self, driver, url):
        self.driver, self.url = driver, url
        self.open()

    def open(self):
        self.driver.get(self.url)
        self._wait(lambda: "done" in self.text("count"))

    def text(self, element_id):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id).text

    def visible(self, element_id):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id).is_displayed()

    def _wait(self, condition, timeout=20):
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout).until(lambda _: condition())

    def shown(self):
        """The file name of the image on the page, or None when every image is done."""
        return self.text("name") if self.visible("work") else None

    def image_loaded(self):
        return self.driver.execute_script(
            "const i = document.getElementById('image'); return i.complete && i.naturalWidth > 0;")

    def press(self, key):
        from selenium.webdriver.common.by import By

        before = (self.text("count"), self.text("status"))
        self.driver.find_element(By.TAG_NAME, "body").send_keys(key)
        self._wait(lambda: (self.text("count"), self.text("status")) != before)
