"""The README's screenshot of ``lpn-arc explore``, and the page's latencies in a browser.

Serves the explorer of a checkpoint from this process, drives it in headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, through Selenium) as a user would: pick a
held-out task, show the heat map, run a gradient search, move the plane to the best latent
found, zoom to the task and click next to the best point; then saves a screenshot and
prints how long the page took to be ready and to play the search.

Usage::

    python -m benchmarks.explorer_screenshot [--checkpoint pretrained:pattern-6x6-grad1]
        [--task 19] [--steps 40] [--out docs/images/explorer.png]

Pick a ``--task`` whose aggregate decodes wrongly and whose search ends right, so that
the picture shows what search is for.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks import common

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1480,1130",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _drive(driver, url: str, task: int, steps: int, out: Path) -> None:
    from selenium.webdriver import ActionChains
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(driver, 300, poll_frequency=0.05)

    def body(name):
        return driver.find_element("tag name", "body").get_attribute(f"data-{name}")

    start = time.perf_counter()
    driver.get(url)
    wait.until(lambda _: body("state") == "ready")
    print(f"page ready in {time.perf_counter() - start:.2f} s")
    Select(driver.find_element("id", "task-select")).select_by_value(str(task))
    time.sleep(1.5)
    driver.find_element("id", "show-landscape").click()
    time.sleep(2)
    driver.find_element("id", "steps").clear()
    driver.find_element("id", "steps").send_keys(str(steps))
    start = time.perf_counter()
    driver.find_element("id", "run").click()
    wait.until(lambda _: body("searched") == str(steps + 1))
    print(
        f"{steps} gradient steps played in {time.perf_counter() - start:.2f} s; "
        f"{driver.find_element('id', 'timing').text}; "
        f"answer {driver.find_element('id', 'verdict').text}"
    )
    Select(driver.find_element("id", "through")).select_by_value("best")
    time.sleep(2)
    driver.find_element("id", "zoom-task").click()
    time.sleep(3)
    best = driver.find_element("css selector", "#marks circle.best")
    ActionChains(driver).move_to_element_with_offset(best, 40, 30).click().perform()
    time.sleep(1.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="pretrained:pattern-6x6-grad1")
    parser.add_argument("--task", type=int, default=19, help="held-out task shown")
    parser.add_argument("--steps", type=int, default=40, help="gradient steps run")
    parser.add_argument("--out", default=str(common.REPO_ROOT / "docs/images/explorer.png"))
    args = parser.parse_args(argv)
    from lpn_arc.explorer import BackgroundServer, Explorer, pattern_tasks
    from lpn_arc.explorer.searching import warm_up
    from lpn_arc.pretrained import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    tasks = pattern_tasks(ckpt.config, 32)
    explorer = Explorer(
        ckpt.config, ckpt.graphdef, ckpt.params, tasks, name=args.checkpoint, step=ckpt.step
    )
    warm_up(explorer)
    driver = _browser()
    try:
        with BackgroundServer(explorer) as url:
            _drive(driver, url, args.task, args.steps, Path(args.out))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
