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


def dismiss_community_modal(driver, timeout: float = 60, required: bool = True) -> None:
    """The first visit shows "Join the Dagster community" over the UI: press its Skip.
    It shows once per browser profile; `required=False` accepts that it does not come."""
    try:
        wait_for(lambda: "Join the Dagster community" in body_text(driver), timeout=timeout,
                 what="the first-visit modal")
    except AssertionError:
        if required:
            raise
        return
    driver.find_element(By.XPATH, "//button[normalize-space()='Skip']").click()
    wait_for(lambda: "Join the Dagster community" not in body_text(driver),
             what="the modal to close")


def asset_lineage_labels(driver, expected: set[str], timeout: float = 90) -> set[str]:
    """On the global lineage page: expand every group (the UI's ⌥E), zoom out (down to the
    UI's minimum zoom) until every expected asset's node lies wholly in view, and return
    the expected names whose nodes a user can see."""
    wait_for(lambda: "Global asset lineage" in body_text(driver), what="the lineage page")
    # Groups start collapsed; ⌥E expands them all and records that in the URL.
    wait_for(lambda: _press_expand_all(driver), timeout=timeout, interval=1,
             what="the asset groups to expand")
    deadline = time.monotonic() + timeout
    shown: set[str] = set()
    while time.monotonic() < deadline:
        shown = expected & _names_in_view(driver)
        if shown == expected:
            break
        # Nodes outside the viewport are cut off or not drawn at all: zoom out one step.
        driver.find_element(By.XPATH, "//button[.//div[@aria-label='zoom_out']]").click()
        time.sleep(1)
    return shown


def _press_expand_all(driver) -> bool:
    if "expanded=" in driver.current_url:
        return True
    ActionChains(driver).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
    time.sleep(1)
    return "expanded=" in driver.current_url


_NODES_IN_VIEW = """
// A node counts when the browser would hit the node itself at its centre and near two
// opposite corners: inside the window, not scrolled away, not under another pane.
const inView = [];
for (const node of document.querySelectorAll('svg foreignObject')) {
  const box = node.getBoundingClientRect();
  const at = (fx, fy) => [box.left + box.width * fx, box.top + box.height * fy];
  const points = [at(0.2, 0.15), at(0.8, 0.85), at(0.5, 0.5)];
  const hit = points.every(([x, y]) => {
    const element = document.elementFromPoint(x, y);
    return element !== null && node.contains(element);
  });
  const content = node.firstElementChild;
  if (box.width > 0 && hit && content) inView.push(content.innerText || '');
}
return inView;
"""


def _names_in_view(driver) -> set[str]:
    """First lines of the lineage graph's nodes lying wholly inside the window (asset
    names, group names); the sidebar's group list is not part of the graph."""
    texts = driver.execute_script(_NODES_IN_VIEW)
    return {line.strip() for text in texts for line in text.splitlines()[:1] if line.strip()}


def run_page_text(driver, base_url: str, run_id: str, timeout: float = 60) -> str:
    driver.get(f"{base_url}/runs/{run_id}")

    def finished_page():
        text = body_text(driver)
        return text if "Success" in text and "RUN_SUCCESS" in text else None

    return wait_for(finished_page, timeout=timeout,
                    what=f"the page of run {run_id} to show its success")
