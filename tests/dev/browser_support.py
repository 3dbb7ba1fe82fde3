"""Headless Chromium driving the Dagster UI: what a user sees, read from the page."""

import time

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


def wait_for(predicate, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except WebDriverException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def body_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def dismiss_community_modal(driver) -> None:
    """The first visit shows "Join the Dagster community" over the UI: press its Skip."""
    wait_for(lambda: "Join the Dagster community" in body_text(driver),
             what="the first-visit modal")
    driver.find_element(By.XPATH, "//button[normalize-space()='Skip']").click()
    wait_for(lambda: "Join the Dagster community" not in body_text(driver),
             what="the modal to close")


def asset_lineage_labels(driver, expected: set[str], timeout: float = 90) -> set[str]:
    """On the global lineage page: expand every group (the UI's ⌥E), zoom out until every
    expected asset's node is drawn, and return the expected names the graph shows."""
    wait_for(lambda: "Global asset lineage" in body_text(driver), what="the lineage page")
    # Groups start collapsed; ⌥E expands them all and records that in the URL.
    wait_for(lambda: _press_expand_all(driver), timeout=timeout, interval=1,
             what="the asset groups to expand")
    deadline = time.monotonic() + timeout
    shown: set[str] = set()
    while time.monotonic() < deadline:
        shown = {name for name in expected if name in _graph_text(driver)}
        if shown == expected:
            # One step further out, so the screenshot shows whole nodes at the edges too.
            driver.find_element(By.XPATH, "//button[.//div[@aria-label='zoom_out']]").click()
            time.sleep(1)
            break
        # Nodes outside the viewport are not drawn at all: zoom out one step.
        driver.find_element(By.XPATH, "//button[.//div[@aria-label='zoom_out']]").click()
        time.sleep(1)
    return shown


def _press_expand_all(driver) -> bool:
    if "expanded=" in driver.current_url:
        return True
    ActionChains(driver).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
    time.sleep(1)
    return "expanded=" in driver.current_url


def _graph_text(driver) -> str:
    """Text of the lineage graph's nodes only (not the sidebar's group list)."""
    return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "svg foreignObject"))


def run_page_text(driver, base_url: str, run_id: str, timeout: float = 60) -> str:
    driver.get(f"{base_url}/runs/{run_id}")

    def finished_page():
        text = body_text(driver)
        return text if "Success" in text and "RUN_SUCCESS" in text else None

    return wait_for(finished_page, timeout=timeout,
                    what=f"the page of run {run_id} to show its success")
