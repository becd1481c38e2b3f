"""The explorer end to end in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium; nothing is downloaded): load the page, pick a task, run 20 gradient
steps, and check the trace, the trajectory and the decoded grid; save a screenshot."""

import itertools
import json
import shutil
from pathlib import Path

import pytest
from lpn_arc.explorer import BackgroundServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver",
        reason="selenium is not installed (pip install 'lpn-arc[browser-test]')",
    )
    from selenium.webdriver.chrome.service import Service

    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            pytest.skip(f"no {path}: install Debian's {package} (make test does where it can)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1500,1000",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=120):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the page redraws grids and plots by replacing elements: a condition that read one
    # while it was replaced is tried again
    ignored = (StaleElementReferenceException,)
    return WebDriverWait(driver, timeout, 0.1, ignored_exceptions=ignored).until(condition)


def _body_data(driver, name):
    return driver.find_element("tag name", "body").get_attribute(f"data-{name}")


def _colours(driver, selector):
    """The colours of the grid cells ``selector`` finds (their class is ``cell cK``)."""
    return [
        int(c.get_attribute("class")[6:]) for c in driver.find_elements("css selector", selector)
    ]


def test_pick_a_task_run_20_gradient_steps_and_watch_them(browser, explorer, tmp_path):
    from selenium.webdriver.support.ui import Select

    with BackgroundServer(explorer) as url:
        browser.get(url)
        _wait(browser, lambda d: _body_data(d, "state") == "ready")
        assert browser.find_element("id", "error").get_attribute("hidden") is not None
        Select(browser.find_element("id", "task-select")).select_by_value("2")
        query = explorer.tasks[2]["test"][0]["input"]
        cells = "#query .pair > .grid:first-child .cell"  # the query input
        colours = [value for row in query for value in row]
        _wait(
            browser, lambda d: _colours(d, cells) == colours and _body_data(d, "state") == "ready"
        )
        Select(browser.find_element("id", "kind")).select_by_value("grad")
        for field, value in (("steps", "20"), ("lr", "0.05")):
            browser.find_element("id", field).clear()
            browser.find_element("id", field).send_keys(value)
        browser.find_element("id", "run").click()
        _wait(browser, lambda d: _body_data(d, "searched") == "21")

        trace = json.loads(browser.find_element("id", "trace").get_attribute("data-values"))
        assert len(trace) == 21 and None not in trace
        assert all(b >= a for a, b in itertools.pairwise(trace)) and trace[-1] > trace[0]
        line = browser.find_element("id", "trajectory")
        assert line.get_attribute("data-count") == "21"
        assert len(line.get_attribute("points").split()) == 21
        assert browser.find_elements("css selector", "#marks circle.best")
        assert browser.find_element("id", "trace-best").get_attribute("points").count(",") == 21
        decoded = browser.find_element("css selector", "#decoded .grid")
        rows, cols = (
            int(decoded.get_attribute("data-rows")),
            int(decoded.get_attribute("data-cols")),
        )
        assert len(decoded.find_elements("css selector", ".cell")) == rows * cols >= 1
        assert browser.find_element("id", "verdict").text in ("✓ right", "✗ wrong")
        assert browser.find_element("id", "error").get_attribute("hidden") is not None

        browser.find_element("id", "show-landscape").click()  # the heat map, then a click
        _wait(browser, lambda d: len(d.find_elements("css selector", "#heat rect")) == 24 * 24)
        browser.find_element("id", "plane").click()
        _wait(browser, lambda d: d.find_elements("css selector", "#probe .grid"))
        Select(browser.find_element("id", "through")).select_by_value("best")  # move the plane
        _wait(browser, lambda d: not d.find_elements("css selector", "#probe .grid"))
        browser.find_element("id", "plane").click()
        _wait(browser, lambda d: d.find_elements("css selector", "#probe .grid"))
        assert browser.find_element("id", "error").get_attribute("hidden") is not None
        shot = tmp_path / "explorer.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_a_bad_task_file_shows_a_message_not_a_traceback(browser, explorer, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}'
    )
    with BackgroundServer(explorer) as url:
        browser.get(url)
        _wait(browser, lambda d: _body_data(d, "state") == "ready")
        browser.find_element("id", "task-file").send_keys(str(bad))
        error = browser.find_element("id", "error")
        _wait(browser, lambda d: error.get_attribute("hidden") is None)
        assert error.text.startswith("bad.json: ") and "Traceback" not in error.text
        assert "row 1 has 1 cells" in error.text


def test_an_arc_task_with_the_shipped_arc_model(browser):
    """``lpn-arc explore --checkpoint pretrained:arc1-cpu-10x10``: ARC-AGI-1 evaluation tasks
    that fit the model, one searched and decoded in the page."""
    from lpn_arc.explorer import Explorer, offered_tasks
    from lpn_arc.pretrained import load_pretrained
    from selenium.webdriver.support.ui import Select

    ckpt = load_pretrained("arc1-cpu-10x10")
    tasks = offered_tasks(ckpt.config, 3)  # the first arc1-eval tasks whose grids fit 10x10
    assert len(tasks) == 3 and all(len(t["train"]) >= 2 for t in tasks)
    explorer = Explorer(
        ckpt.config, ckpt.graphdef, ckpt.params, tasks, name="arc1-cpu-10x10", step=ckpt.step
    )
    with BackgroundServer(explorer) as url:
        browser.get(url)
        _wait(browser, lambda d: _body_data(d, "state") == "ready")
        Select(browser.find_element("id", "task-select")).select_by_value("1")
        query = tasks[1]["test"][0]["input"]
        cells = "#query .pair > .grid:first-child .cell"
        colours = [value for row in query for value in row]
        _wait(
            browser, lambda d: _colours(d, cells) == colours and _body_data(d, "state") == "ready"
        )
        Select(browser.find_element("id", "kind")).select_by_value("grad")
        browser.find_element("id", "steps").clear()
        browser.find_element("id", "steps").send_keys("5")
        browser.find_element("id", "run").click()
        _wait(browser, lambda d: _body_data(d, "searched") == "6")
        trace = json.loads(browser.find_element("id", "trace").get_attribute("data-values"))
        assert len(trace) == 6 and None not in trace and max(trace) >= trace[0]
        decoded = browser.find_element("css selector", "#decoded .grid")
        rows, cols = (int(decoded.get_attribute(f"data-{a}")) for a in ("rows", "cols"))
        assert 1 <= rows <= 10 and 1 <= cols <= 10
        assert len(decoded.find_elements("css selector", ".cell")) == rows * cols
        assert browser.find_element("id", "verdict").text in ("✓ right", "✗ wrong")
        assert browser.find_element("id", "error").get_attribute("hidden") is not None
