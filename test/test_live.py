"""The detector's live view (live.py): the page in a real headless Chromium refreshing by itself
as cycles come, and the rules of every page we serve (token off loopback, Host check, no token in
logs, silent connections dropped). Real TFLite detections on a synthetic frame."""

from __future__ import annotations

import shutil
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List

import pytest

from cube_detect import live
from cube_detect.inference import load_detector
from cube_detect.synth import render_indexed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def cycle():
    detector = load_detector(backend="cpu")
    image, _ = render_indexed(5, 0, family="topdown")
    return image, detector.detect(image), detector.backend_reason


def make_view(cycle, params: Dict[str, Any]) -> live.LiveView:
    _, _, backend = cycle
    return live.LiveView(backend, {1: "one", 2: "two"}, lambda: dict(params))


def get(url: str, host: str = "") -> Any:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    return urllib.request.urlopen(request, timeout=10)


def test_the_page_shows_the_cycle_and_refreshes_by_itself(cycle):
    pytest.importorskip("selenium", reason="Debian's python3-selenium (make setup installs it)")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("needs Debian's chromium and chromium-driver (make setup installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    image, detections, backend = cycle
    params = {"/takeImage": False, "/label": -1, "/RobotReady": True}
    view = make_view(cycle, params)
    url, stop = live.serve_live(view, "127.0.0.1", 0)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60, poll_frequency=0.1)
        wait.until(lambda d: d.find_element(By.ID, "conn").text == "live", "the page to reach the detector")
        assert driver.find_element(By.ID, "labels").text == "-"  # no cycle yet
        assert driver.find_element(By.ID, "backend").text == backend
        view.set_state("waiting for /takeImage")
        view.update(image, detections, "cpu 1.0 ms")
        expected = "  ".join(d.label for d in detections)
        wait.until(lambda d: d.find_element(By.ID, "labels").text == expected.replace("  ", " ")
                   or d.find_element(By.ID, "labels").text == expected, "the labels of the cycle, without a reload")
        wait.until(lambda d: d.execute_script("const i = document.getElementById('frame');"
                                              "return i.complete && i.naturalWidth") == 640, "the annotated frame")
        assert driver.find_element(By.ID, "state").text == "waiting for /takeImage"
        rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#params tr")]
        assert rows == ["/takeImage false", "/label -1", "/RobotReady true"]
        params["/label"] = 2  # the protocol moves on: the page follows
        view.update(image, detections[:1], "cpu 1.0 ms")
        wait.until(lambda d: d.execute_script("return document.body.dataset.frame") == "2", "the next frame")
        wait.until(lambda d: "/label 2" in [r.text for r in d.find_elements(By.CSS_SELECTOR, "#params tr")],
                   "the parameters to refresh")
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
        stop()
        stop()  # idempotent


def test_off_loopback_every_request_needs_the_token_and_no_log_line_shows_it(cycle):
    lines: List[str] = []
    view = make_view(cycle, {})
    url, stop = live.serve_live(view, "0.0.0.0", 0, log=lines.append)
    try:
        assert "?token=" in url
        token = url.split("?token=")[1]
        port = url.split(":")[2].split("/")[0]
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/status.json?token={token}").status == 200
        for path in ("/", "/status.json", "/frame.jpg", f"/status.json?token={token[:-1]}x"):
            with pytest.raises(urllib.error.HTTPError) as err:
                get(base + path)
            assert err.value.code == 403
            assert err.value.headers["Cross-Origin-Resource-Policy"] == "same-origin"
        assert lines and not [ln for ln in lines if token in ln or token[:-1] in ln]
        assert any("token=[hidden]" in ln for ln in lines)
    finally:
        stop()


def test_on_loopback_a_foreign_host_header_is_refused(cycle):
    url, stop = live.serve_live(make_view(cycle, {}), "127.0.0.1", 0)
    try:
        assert get(url + "status.json").status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            get(url + "status.json", host="evil.example:8766")  # a DNS-rebinding page
        assert err.value.code == 403
        with pytest.raises(urllib.error.HTTPError) as err:
            get(url + "frame.jpg")  # before the first cycle
        assert err.value.code == 404
    finally:
        stop()


def test_a_silent_connection_is_dropped_and_does_not_block_the_page(cycle, monkeypatch):
    monkeypatch.setattr(live, "REQUEST_TIMEOUT_S", 1.0)
    url, stop = live.serve_live(make_view(cycle, {}), "127.0.0.1", 0)
    port = int(url.split(":")[2].split("/")[0])
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    try:
        for s in silent:
            s.sendall(b"GET /status.json HT")  # half a request line, then nothing
        started = time.monotonic()
        assert get(url + "status.json").status == 200
        assert time.monotonic() - started < 5
        time.sleep(2.0)
        for s in silent:  # closed by the server's timeout: reading gives end of file
            s.settimeout(5)
            assert s.recv(1024) == b""
    finally:
        for s in silent:
            s.close()
        stop()
