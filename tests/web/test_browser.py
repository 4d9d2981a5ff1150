"""The pages in a real headless browser: Debian's chromium through chromium-driver, with selenium.

Each page loads with no console error (the browser log is read) and shows the entries of the
live test hierarchy (a gris under a site giis under a top giis, see tests/web/hierarchy.py);
the top's hierarchy page shows all three levels and its links lead to each node's own web
view; a provider's change appears on an open page without a reload; a history plot has
points.  One screenshot per page is saved (an artefact, not committed): in the folder named by
``GRIDINFO_WEB_SCREENSHOTS`` when set, else under the test's pytest tmp folder.

Elements are found again inside each wait (:func:`click`): a live update re-renders a table
between a find and a click, and the element found first is then stale.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.web.conftest import get_json, metric, until
from tests.web.hierarchy import CE_DN, SUFFIX, Hierarchy

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver")

GIIS_CE_DN = CE_DN.replace(SUFFIX, "mds-vo-name=site,o=grid")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named = os.environ.get("GRIDINFO_WEB_SCREENSHOTS")
    if named:
        Path(named).mkdir(parents=True, exist_ok=True)
        return Path(named)
    return tmp_path_factory.mktemp("web-screenshots")


def click(driver: object, by: str, value: str, what: str) -> None:
    """Find the element and click it inside the wait: one a live update replaced in between
    (stale) or has not drawn yet is found again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def clicked() -> bool:
        try:
            driver.find_element(by, value).click()  # type: ignore[attr-defined]
        except (NoSuchElementException, StaleElementReferenceException):
            return False
        return True

    until(clicked, what)


def console_errors(driver: object) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]  # type: ignore[attr-defined]


def open_page(driver: object, url: str, shots: Path, name: str) -> None:
    driver.get_log("browser")  # type: ignore[attr-defined]  # drop what earlier pages logged
    driver.get(url)  # type: ignore[attr-defined]
    until(lambda: driver.execute_script("return document.body.dataset.renders"),  # type: ignore[attr-defined]
          f"{name} rendered once")


def text(driver: object, css: str) -> str:
    return str(driver.execute_script(f"const n = document.querySelector({css!r}); return n ? n.textContent : ''"))  # type: ignore[attr-defined]


def finish(driver: object, shots: Path, name: str) -> None:
    driver.save_screenshot(str(shots / f"{name}.png"))  # type: ignore[attr-defined]
    assert console_errors(driver) == [], name
    assert "error" not in str(driver.execute_script("return document.querySelector('#status').className")), (  # type: ignore[attr-defined]
        name, text(driver, "#status"))


def registered(hierarchy: Hierarchy) -> None:
    until(lambda: get_json(hierarchy.giis_url + "/api/hierarchy")[1]["children"], "the GRIS registered")
    until(lambda: [q for q in get_json(hierarchy.giis_url + "/api/queues")[1]["queues"] if q["dn"] == GIIS_CE_DN],
          "the provider's queue through the GIIS")


def test_each_page_loads_clean_and_shows_the_hierarchy(browser: object, hierarchy: Hierarchy, shots: Path) -> None:
    registered(hierarchy)
    url = hierarchy.giis_url
    open_page(browser, url + "/", shots, "hierarchy")
    until(lambda: f":{hierarchy.gris.port}/" in text(browser, "#children"), "the child on the hierarchy page")
    assert "VALID" in text(browser, "#children")
    finish(browser, shots, "hierarchy")

    open_page(browser, hierarchy.gris_url + "/", shots, "gris-hierarchy")
    until(lambda: "queue" in text(browser, "#providers"), "the provider on the GRIS's page")
    finish(browser, shots, "gris-hierarchy")

    open_page(browser, url + "/queues", shots, "queues")
    until(lambda: "live" in text(browser, "#queues") and "EXAMPLE-SITE" in text(browser, "#sites"), "queues and site")
    assert browser.execute_script("return document.querySelectorAll('#queues .bar').length") >= 3  # type: ignore[attr-defined]
    click(browser, "css selector", "#queues th:nth-child(7)", "the waiting column's heading")  # sort by waiting
    until(lambda: browser.execute_script("return document.querySelector('#queues th.sorted-asc') !== null"),  # type: ignore[attr-defined]
          "the queues sorted")
    waiting = browser.execute_script(  # type: ignore[attr-defined]
        "return [...document.querySelectorAll('#queues tbody tr td:nth-child(7)')].map(td => +td.textContent)")
    assert waiting == sorted(waiting)
    finish(browser, shots, "queues")

    open_page(browser, url + "/vms", shots, "vms")
    until(lambda: "worker-one" in text(browser, "#vms") and "job-77" in text(browser, "#jobs"), "the VM and job")
    assert "node07.test.org" in text(browser, "#vms") and "alice" in text(browser, "#vms")
    click(browser, "css selector", "#vms tbody a", "the VM's link")
    until(lambda: "Pending" in text(browser, "#vm"), "the VM's history")
    finish(browser, shots, "vms")

    open_page(browser, url + "/network", shots, "network")
    until(lambda: "gris-to-giis" in text(browser, "#paths"), "the network path")
    finish(browser, shots, "network")

    open_page(browser, url + "/browse?" + urlencode({"dn": GIIS_CE_DN}), shots, "browse")
    until(lambda: "GlueCEStateFreeCPUs" in text(browser, "#entry"), "the CE's attributes")
    click(browser, "link text", "GlueClusterUniqueID=ce.example.org", "the foreign key's link")
    until(lambda: "GlueClusterUniqueID=ce.example.org,mds-vo-name=site,o=grid" in text(browser, "#results"),
          "the foreign key followed")
    finish(browser, shots, "browse")
    # the pages left behind closed their live-update streams (kept in the back-forward cache with
    # their streams open, six of them use up the browser's connections and the next page waits)
    until(lambda: metric(url, "gridinfo_web_live_subscribers") == 1, "only the open page listening")


@pytest.mark.parametrize("node,free", [("gris", 41), ("giis", 42)])
def test_a_provider_change_appears_on_the_open_page(
        browser: object, hierarchy: Hierarchy, shots: Path, node: str, free: int) -> None:
    """On a GRIS's page the change comes from its change stream; on a GIIS's, from its change
    stream once its backend has one (polling until then)."""
    registered(hierarchy)
    open_page(browser, getattr(hierarchy, f"{node}_url") + "/queues", shots, f"queues-live-{node}")
    until(lambda: "live" in text(browser, "#queues"), "the queue")
    until(lambda: text(browser, "#live") == "live", "the live-update stream open")
    renders = browser.execute_script("return +document.body.dataset.renders")  # type: ignore[attr-defined]
    hierarchy.set_free_cpus(free)

    def shows_new_value() -> bool:
        return bool(browser.execute_script(  # type: ignore[attr-defined]
            "return [...document.querySelectorAll('#queues tbody tr')].some(tr => "
            f"tr.cells[0].textContent === 'live' && tr.cells[4].textContent === '{free}')"))
    until(shows_new_value, "the new free CPUs on the open page", deadline=60)
    assert browser.execute_script("return +document.body.dataset.renders") > renders  # type: ignore[attr-defined]
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1  # type: ignore[attr-defined]
    finish(browser, shots, f"queues-live-{node}")


def test_a_history_plot_has_points(browser: object, hierarchy: Hierarchy, shots: Path) -> None:
    registered(hierarchy)
    q = urlencode({"dn": CE_DN, "attribute": "GlueCEStateFreeCPUs", "range": "hour"})
    until(lambda: get_json(hierarchy.gris_url + "/api/history?" + q)[1]["points"], "a sample")
    open_page(browser, hierarchy.gris_url + "/history?" + q, shots, "history")
    points = until(lambda: int(browser.execute_script(  # type: ignore[attr-defined]
        "const s = document.querySelector('#plot svg'); return s ? +s.dataset.points : 0")), "a plot with points")
    assert points >= 1
    assert browser.execute_script("return document.querySelectorAll('#plot svg circle').length") == points  # type: ignore[attr-defined]
    assert "GlueCEStateFreeCPUs" in text(browser, "#series")
    finish(browser, shots, "history")


def test_the_top_hierarchy_page_shows_every_level_and_links_to_each_nodes_own_view(
        browser: object, hierarchy: Hierarchy, shots: Path) -> None:
    registered(hierarchy)
    open_page(browser, hierarchy.top_url + "/", shots, "top-hierarchy")

    def three_levels() -> bool:
        return bool(browser.execute_script(  # type: ignore[attr-defined]
            "return document.querySelectorAll('#tree > li > ul > li > ul > li').length === 1"))
    until(three_levels, "top -> site -> gris on the top's hierarchy page", deadline=60)
    tree = text(browser, "#tree")
    assert f":{hierarchy.giis.port}/mds-vo-name=site,o=grid" in tree and f":{hierarchy.gris.port}/{SUFFIX}" in tree
    assert "VALID" in tree and "lease" in tree and " ms" in tree and "entries" in tree
    assert browser.execute_script("return document.querySelectorAll('#tree li.unhealthy').length") == 0  # type: ignore[attr-defined]
    site_link = "#tree > li > ul > li > a"
    assert browser.execute_script(f"return document.querySelector({site_link!r}).href") == hierarchy.giis_url + "/"  # type: ignore[attr-defined]
    finish(browser, shots, "top-hierarchy")

    driver: Any = browser
    driver.get_log("browser")
    click(browser, "css selector", site_link, "the site's link")  # to the site's own web view
    until(lambda: driver.current_url == hierarchy.giis_url + "/" and driver.execute_script(
        "return document.body.dataset.renders"), "the site's own hierarchy page")
    until(lambda: f":{hierarchy.gris.port}/" in text(browser, "#tree"), "the GRIS on the site's page")
    finish(browser, shots, "site-hierarchy")
    driver.get_log("browser")
    click(browser, "css selector", "#tree > li > ul > li > a", "the GRIS's link")
    until(lambda: driver.current_url == hierarchy.gris_url + "/" and "queue" in text(browser, "#providers"),
          "the GRIS's own page")
    finish(browser, shots, "gris-from-site")
