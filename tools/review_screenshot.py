#!/usr/bin/env python3
"""Screenshot of the review page for the README (docs/img/review.png).

    python tools/review_screenshot.py [--out docs/img/review.png] [--count 10] [--seed 3]

A data set as capture leaves it: synthetic scenes (``synth``), each pre-annotated by the shipped
model with its scores (what capture writes), three already reviewed and the last one without XML; then
the page in headless Chromium (Debian's chromium + chromium-driver, python3-selenium), in
"lowest score first" order, the first image's first box selected.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2

from cube_detect.capture import annotation_boxes
from cube_detect.inference import DecodeSettings, load_detector
from cube_detect.review import serve_in_thread
from cube_detect.synth import write_dataset
from cube_detect.voc import read_voc, write_voc

ROOT = Path(__file__).resolve().parents[1]


def pre_annotate(dataset: Path) -> None:
    """Replace synth's true boxes by the shipped model's guesses, with scores, as capture does."""
    detector = load_detector(ROOT / "models" / "cube_detect.tflite", decoding=DecodeSettings(threshold=0.3))
    xmls = sorted(dataset.glob("*/*.xml"))
    for index, xml in enumerate(xmls):
        image = cv2.imread(str(xml.with_suffix(".png")))
        truth = read_voc(xml)
        boxes = annotation_boxes(detector.detect(image), truth.width, truth.height)
        write_voc(xml, replace(truth, boxes=boxes, verified=len(xmls) - 4 <= index < len(xmls) - 1))
    xmls[-1].unlink()  # an image saved without pre-annotation: "no XML"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "review.png"))
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "cubes"
        write_dataset(dataset, args.count, args.seed, progress=False)
        pre_annotate(dataset)
        url, stop = serve_in_thread(dataset, port=0)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1400,820", "--force-device-scale-factor=1"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(url)
            time.sleep(2)
            Select(driver.find_element(By.ID, "order")).select_by_value("score")
            driver.find_element(By.CSS_SELECTOR, "#list li").click()
            time.sleep(1.5)
            ActionChains(driver).send_keys(Keys.TAB).perform()
            time.sleep(0.5)
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
            stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

