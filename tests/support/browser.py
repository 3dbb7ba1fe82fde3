"""Headless Chromium on the Dagster UI: starting it, reading a page, the first-visit dialog."""

import contextlib
import shutil
import tempfile
from pathlib import Path

from support.waiting import wait_for

# Dagster's "Join the Dagster community" dialog: it opens about a second after the first
# load of a browser profile, over the page.
SKIP_BUTTON = (
    "//div[contains(@class,'dialog')]//button[normalize-space(.)='Skip']"
    " | //*[@role='dialog']//button[normalize-space(.)='Skip']"
)


@contextlib.contextmanager
def chromium_driver(width: int = 1600, height: int = 1000):
    """Headless Chromium driven by its chromedriver: Debian's (apt `chromium`,
    `chromium-driver`, what `make install` installs) or whichever is on PATH. A fresh
    profile each time (so the first-visit dialog is due), removed with the browser."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    browser = next(
        (found for name in ("chromium", "chromium-browser", "google-chrome")
         if (found := shutil.which(name))),
        None,
    )
    if not Path(driver).exists() or browser is None:
        raise RuntimeError(
            "Chromium and chromedriver are needed for the UI checks: `make install` installs "
            "them on Debian/Ubuntu (apt packages chromium, chromium-driver)"
        )
    profile = tempfile.mkdtemp(prefix="lakeport-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    try:
        session = webdriver.Chrome(service=Service(driver), options=options)
        try:
            yield session
        finally:
            session.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def body_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def dismiss_first_visit_modal(driver, timeout: float = 8, required: bool = False) -> bool:
    """Close the first-visit dialog with its Skip button; False when it did not come within
    `timeout` (it shows once per browser profile), or an AssertionError if `required`."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    def skip_button():
        button = driver.find_element(By.XPATH, SKIP_BUTTON)
        return button if button.is_displayed() and button.is_enabled() else None

    try:
        button = wait_for(skip_button, what="the first-visit dialog", timeout=timeout,
                          interval=0.5, ignore=WebDriverException)
    except AssertionError:
        if required:
            raise
        return False
    button.click()

    def closed():
        return all(not b.is_displayed() for b in driver.find_elements(By.XPATH, SKIP_BUTTON))

    wait_for(closed, what="the first-visit dialog to close", timeout=timeout, interval=0.5,
             ignore=WebDriverException)
    return True
