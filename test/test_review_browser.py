"""The review page end to end in a real browser: Debian's headless Chromium driven by Selenium.

On a synthetic data set (``python -m cube_detect synth --count 4``), opened with a malformed URL
fragment, it changes a class with the keyboard, deletes a box, draws one with the mouse and moves
it, marks boxes difficult (key d, and a box's checkbox), accepts the image, then reads the XML on
disk; then a new capture shows up without a reload, and an edit of a file another tool just
rewrote is refused and reloaded. The screenshot it keeps (``test-artifacts/review.png``, path
printed) shows the page just before the accept. ``make setup`` installs chromium,
chromium-driver and python3-selenium (Debian's; the venv sees them through
--system-site-packages).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

pytest.importorskip("flask", reason="the review page needs Flask: pip install -r requirements/review.txt")
pytest.importorskip("selenium", reason="Debian's python3-selenium (make setup installs it)")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from cube_detect.review import serve_in_thread  # noqa: E402
from cube_detect.voc import LabeledBox, read_voc, write_voc  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
TIMEOUT = 60  # seconds: two cores shared with whatever else runs


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("needs Debian's chromium and chromium-driver (make setup installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,860", "--force-device-scale-factor=1", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    return WebDriverWait(driver, TIMEOUT, poll_frequency=0.1).until(condition, message=f"waiting for {what}")


def keys(driver: Any, *sequence: str) -> None:
    for key in sequence:
        ActionChains(driver).send_keys(key).perform()


def title(driver: Any) -> str:
    return str(driver.find_element(By.ID, "title").text)


def wait_saved(driver: Any) -> None:
    wait(driver, lambda d: d.execute_script("return document.body.dataset.pending") == "0", "saves to finish")


def page_ready(driver: Any, image_id: str) -> bool:
    """The image ``image_id`` is on screen: its record loaded and its pixels drawn."""
    return bool(title(driver) == image_id and driver.execute_script(
        "const c = document.getElementById('canvas'); return c.width > 10;"))


def summary_cell(driver: Any, split: str, column: str) -> Optional[str]:
    """The text of the data-set table's cell (row ``split``, column ``column``), None if absent."""
    return driver.execute_script(
        "const rows = [...document.querySelectorAll('#summary tr')].map((r) => [...r.cells].map((c) => c.textContent));"
        "if (!rows.length) return null; const col = rows[0].indexOf(arguments[1]);"
        "const row = rows.find((r) => r[0] === arguments[0]);"
        "return col < 0 || !row ? null : row[col];", split, column)


def test_review_page_in_chromium(browser: Any, tmp_path: Path) -> None:
    dataset = tmp_path / "cubes"
    subprocess.run([sys.executable, "-m", "cube_detect", "synth", "--out", str(dataset), "--count", "4"],
                   check=True, capture_output=True, timeout=300)
    xmls = sorted(dataset.glob("*/*.xml"))
    assert len(xmls) == 4
    # The image the test edits: the first in the page's order with at least two faces.
    target_xml = next(p for p in xmls if len(read_voc(p).boxes) >= 2)
    target_id = f"{target_xml.parent.name}/{target_xml.stem}.png"
    before = read_voc(target_xml)
    url, stop = serve_in_thread(dataset, port=0)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "review.png"
    try:
        browser.get(url + "#%E0%A4%A")  # a malformed fragment (URIError if decoded unguarded): harmless
        wait(browser, lambda d: title(d) != "", "the first image")
        # Keyboard: next image until the target is on screen.
        for _ in range(len(xmls)):
            if title(browser) == target_id:
                break
            keys(browser, "n")
            time.sleep(0.3)
        wait(browser, lambda d: page_ready(d, target_id), f"{target_id} on screen")
        rows = browser.find_elements(By.CSS_SELECTOR, "#list li")
        assert len(rows) == 4 and all("unreviewed" in r.find_element(By.CLASS_NAME, "dot").get_attribute("class")
                                      for r in rows)

        # 1. Keyboard: select the first box (Tab) and give it the other class (its number key).
        first = before.boxes[0]
        other = "two" if first.label == "one" else "one"
        keys(browser, Keys.TAB, "2" if other == "two" else "1")
        # 2. Keyboard: select the second box and delete it.
        keys(browser, Keys.TAB, Keys.DELETE)
        # 3. Mouse: draw a box on the image, then move it by dragging its inside.
        canvas = browser.find_element(By.ID, "canvas")
        rect = browser.execute_script("const r = arguments[0].getBoundingClientRect();"
                                      "return [r.width, r.height];", canvas)
        scale = rect[0] / before.width

        def offset(x: float, y: float) -> List[int]:
            """Image pixel -> offset from the canvas's centre (Selenium's origin), in CSS pixels."""
            return [round(x * scale - rect[0] / 2), round(y * scale - rect[1] / 2)]

        start, end = (20, 20), (140, 110)
        drawn = LabeledBox(other, *start, *end)
        assert not any(b.bbox.iou(drawn.bbox) > 0.3 for b in before.boxes[2:]), "test box overlaps a face"
        (sx, sy), (ex, ey) = offset(*start), offset(*end)
        ActionChains(browser).move_to_element_with_offset(canvas, sx, sy).click_and_hold() \
            .move_by_offset((ex - sx) // 2, (ey - sy) // 2).move_by_offset(ex - sx - (ex - sx) // 2,
                                                                          ey - sy - (ey - sy) // 2) \
            .release().perform()
        # the drawn box takes the class of the last number key (`other`); make it "one" with key 1
        keys(browser, "1")
        cx, cy = offset(80, 65)
        shift = round(30 * scale)
        ActionChains(browser).move_to_element_with_offset(canvas, cx, cy).click_and_hold() \
            .move_by_offset(shift, shift).release().perform()
        wait_saved(browser)
        expected_boxes = [LabeledBox(other, first.xmin, first.ymin, first.xmax, first.ymax), *before.boxes[2:]]
        drawn_on_disk = read_voc(target_xml).boxes[-1]
        assert drawn_on_disk.label == "one" and drawn_on_disk.score is None
        for got, want in zip((drawn_on_disk.xmin, drawn_on_disk.ymin, drawn_on_disk.xmax, drawn_on_disk.ymax),
                             (50, 50, 170, 140)):
            assert abs(got - want) <= 2, (drawn_on_disk, "drawn at (20, 20, 140, 110), moved by 30 px")
        assert read_voc(target_xml).boxes[:-1] == expected_boxes and not read_voc(target_xml).verified
        # 3b. Difficult: key d on the selected (drawn) box, the checkbox of the first box; both dashed.
        assert not any(b.difficult for b in read_voc(target_xml).boxes)
        keys(browser, "d")
        wait_saved(browser)
        for _ in range(5):  # the list is rebuilt when a save answers: find the checkbox afresh
            try:
                browser.find_element(By.CSS_SELECTOR, "#boxes li:first-child .difficult-flag input").click()
                break
            except StaleElementReferenceException:
                time.sleep(0.2)
        wait_saved(browser)
        wait(browser, lambda d: [b.difficult for b in read_voc(target_xml).boxes] ==
             [True] + [False] * (len(expected_boxes) - 1) + [True], "difficult saved for the first and drawn boxes")
        checks = browser.find_elements(By.CSS_SELECTOR, "#boxes .difficult-flag input")
        assert [c.is_selected() for c in checks] == [True] + [False] * (len(checks) - 2) + [True]
        browser.save_screenshot(str(screenshot))
        print(f"\nreview page screenshot: {screenshot}")

        # 4. Keyboard: accept (Space): saved as verified="yes", and the page goes on to the next image.
        keys(browser, " ")
        wait(browser, lambda d: title(d) not in ("", target_id), "the next unreviewed image")
        wait_saved(browser)
        after = read_voc(target_xml)
        assert after.verified and 'verified="yes"' in target_xml.read_text()
        assert after.boxes[0].difficult and after.boxes[-1].difficult  # kept through the accept
        assert after.boxes[:-1] == expected_boxes and after.boxes[-1] == drawn_on_disk
        assert (after.filename, after.folder, after.path) == (before.filename, before.folder, before.path)
        row = browser.find_element(By.CSS_SELECTOR, f"#list li[data-id='{target_id}'] .dot")
        wait(browser, lambda d: "reviewed" in row.get_attribute("class").split(), "the list to show it reviewed")
        # The data-set table counts the difficult faces on disk (the two marked here, and any the
        # generator marked) in their own column, as `stats` does.
        on_disk = sum(b.difficult for p in dataset.glob("*/*.xml") for b in read_voc(p).boxes)
        wait(browser, lambda d: summary_cell(d, "total", "difficult") == str(on_disk),
             f"the data-set table to count {on_disk} difficult faces")

        # 5. A capture meanwhile shows up without a reload.
        subprocess.run([sys.executable, "-m", "cube_detect", "synth", "--out", str(dataset), "--count", "1",
                        "--seed", "7"], check=True, capture_output=True, timeout=300)
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#list li")) == 5, "the new capture in the list")

        # 6. Another tool rewrites the image on screen just as the page edits it: the page never
        # overwrites that unseen (409, or the poll saw it first) and shows what is on disk.
        shown = title(browser)
        shown_xml = dataset / shown.replace(".png", ".xml")
        wait(browser, lambda d: page_ready(d, shown), f"{shown} on screen")
        theirs = replace(read_voc(shown_xml), boxes=[LabeledBox("two", 1, 1, 50, 50)])
        write_voc(shown_xml, theirs)
        keys(browser, Keys.TAB, Keys.DELETE)
        wait(browser, lambda d: "changed on disk" in d.find_element(By.ID, "message").text, "the conflict message")
        wait_saved(browser)
        on_disk = read_voc(shown_xml).boxes
        assert on_disk in ([], theirs.boxes)
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#boxes li:not(.muted)")) == len(on_disk),
             "the page to show the file as it is on disk")

        errors = [e for e in browser.get_log("browser")
                  if e["level"] == "SEVERE" and "status of 409" not in e["message"]]
        assert not errors, errors
    except BaseException:
        browser.save_screenshot(str(ARTIFACTS / "review-failure.png"))
        print(f"\nreview page at the failure: {ARTIFACTS / 'review-failure.png'}")
        raise
    finally:
        stop()
