"""The Dagster UI of `lakeport dev` in a browser: what a user sees, read from the page."""

import time

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from support.browser import body_text
from support.waiting import wait_for


def asset_lineage_labels(driver, expected: set[str], timeout: float = 90) -> set[str]:
    """On the global lineage page: expand every group (the UI's ⌥E), zoom out (down to the
    UI's minimum zoom) until every expected asset's node lies wholly in view, and return
    the expected names whose nodes a user can see."""
    wait_for(lambda: "Global asset lineage" in body_text(driver), what="the lineage page",
             timeout=60, interval=0.5, ignore=WebDriverException)
    # Groups start collapsed; ⌥E expands them all and records that in the URL.
    wait_for(lambda: _press_expand_all(driver), what="the asset groups to expand",
             timeout=timeout, interval=1, ignore=WebDriverException)
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

    return wait_for(finished_page, what=f"the page of run {run_id} to show its success",
                    timeout=timeout, interval=0.5, ignore=WebDriverException)
