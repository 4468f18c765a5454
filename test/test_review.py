"""`python -m cube_detect review`: the HTTP API (load, edit, accept, conflicts, traversal, token).

Most tests use Flask's test client on :func:`create_app`; the token tests run a real server
(:func:`serve_in_thread`) and talk to it over loopback.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest

from cube_detect.review_store import ReviewStore

pytest.importorskip("flask", reason="the review page needs Flask: pip install -r requirements/review.txt")

from cube_detect.dataset import load_split  # noqa: E402
from cube_detect.dataset_writer import DatasetWriter  # noqa: E402
from cube_detect.errors import CubeDetectError  # noqa: E402
from cube_detect.labels import LABELS  # noqa: E402
from cube_detect.review import create_app, serve_in_thread  # noqa: E402
from cube_detect.stats import count_split, format_stats  # noqa: E402
from cube_detect.voc import Annotation, LabeledBox, format_voc, read_voc, write_voc  # noqa: E402

W, H = 64, 48
SECRET = b"\x89PNG\r\n\x1a\nsecret outside the data set"


def frame(value: int = 40) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """image001..image003 pre-annotated (with scores), image004 without XML, all in train/."""
    root = tmp_path / "ds"
    writer = DatasetWriter(root, test_share=0.0)
    writer.save(frame(), [LabeledBox("one", 2, 3, 20, 30, 0.91), LabeledBox("two", 30, 5, 60, 40, 0.42)])
    writer.save(frame(60), [LabeledBox("two", 10, 10, 30, 30, 0.77)])
    writer.save(frame(80), [])
    writer.save(frame(100), None)
    (tmp_path / "secret.png").write_bytes(SECRET)
    return root


@pytest.fixture()
def client(dataset: Path) -> Any:
    return create_app(dataset).test_client()


def xml(root: Path, name: str, split: str = "train") -> Path:
    return root / split / name.replace(".png", ".xml")


def load(client: Any, name: str, split: str = "train") -> Dict[str, Any]:
    response = client.get(f"/api/ann/{split}/{name}")
    assert response.status_code == 200, response.json
    return response.json


def put(client: Any, name: str, body: Dict[str, Any], split: str = "train") -> Any:
    return client.put(f"/api/ann/{split}/{name}", json=body)


def no_temporary_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


# --------------------------------------------------------------------------- VOC additions


def test_verified_and_scores_round_trip_in_labelimg_layout(tmp_path: Path) -> None:
    ann = Annotation("image001.png", W, H, 3, [LabeledBox("one", 2, 3, 20, 30, 0.9134), LabeledBox("two", 1, 1, 9, 9)],
                     "train", "/x/train/image001.png", verified=True)
    write_voc(tmp_path / "a.xml", ann)
    back = read_voc(tmp_path / "a.xml")
    assert back == ann and back.verified
    assert [b.score for b in back.boxes] == [0.913, None]
    # What labelImg's PascalVocReader and the TF OD API's dict parser look at is unchanged.
    root = ET.parse(tmp_path / "a.xml").getroot()
    assert root.attrib == {"verified": "yes"}
    assert [c.tag for c in root.find("object")] == ["name", "pose", "truncated", "difficult", "bndbox", "score"]
    assert [c.tag for c in root.findall("object")[1]] == ["name", "pose", "truncated", "difficult", "bndbox"]
    # Without either, the bytes are exactly labelImg's as before.
    plain = Annotation("image001.png", W, H, 3, [LabeledBox("one", 2, 3, 20, 30)], "train")
    assert 'verified' not in format_voc(plain) and "<score>" not in format_voc(plain)


def test_bad_score_names_file_and_line(tmp_path: Path) -> None:
    text = format_voc(Annotation("a.png", W, H, 3, [LabeledBox("one", 2, 3, 20, 30, 0.5)]))
    (tmp_path / "a.xml").write_text(text.replace("<score>0.500</score>", "<score>high</score>"))
    with pytest.raises(CubeDetectError, match=r"a\.xml:\d+: <score>"):
        read_voc(tmp_path / "a.xml")


# --------------------------------------------------------------------------- load


def test_list_statuses_scores_and_summary_are_stats_figures(client: Any, dataset: Path) -> None:
    write_voc(xml(dataset, "image002.png"), replace(read_voc(xml(dataset, "image002.png")), verified=True))
    data = client.get("/api/images").json
    rows = {row["name"]: row for row in data["images"]}
    assert [rows[n]["status"] for n in sorted(rows)] == ["unreviewed", "reviewed", "unreviewed", "no-xml"]
    assert rows["image001.png"]["min_score"] == pytest.approx(0.42)
    assert rows["image003.png"]["min_score"] is None and rows["image003.png"]["faces"] == 0
    assert rows["image001.png"]["classes"] == {"one": 1, "two": 1}
    assert data["labels"] == ["one", "two"]
    summary = data["summary"]
    train = next(r for r in summary["rows"] if r["split"] == "train")
    assert (train["images"], train["faces"], train["one"], train["two"]) == (3, 3, 1, 2)
    assert (train["listed"], train["reviewed"], train["no_xml"], train["bad"]) == (4, 1, 1, 0)
    # The same table as `python -m cube_detect stats --skip-bad`.
    expected = []
    total: Dict[str, int] = {}
    for split in ("train", "test"):
        counts = count_split(load_split(dataset / split, skip_bad=True), LABELS)
        expected.append((split, counts))
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    assert summary["stats"] == format_stats(expected + [("total", total)], LABELS)


def test_load_returns_boxes_scores_size_and_version(client: Any, dataset: Path) -> None:
    record = load(client, "image001.png")
    assert (record["width"], record["height"], record["status"], record["verified"]) == (W, H, "unreviewed", False)
    assert record["boxes"] == [
        {"label": "one", "xmin": 2, "ymin": 3, "xmax": 20, "ymax": 30, "score": pytest.approx(0.91),
         "difficult": False, "key": 0},
        {"label": "two", "xmin": 30, "ymin": 5, "xmax": 60, "ymax": 40, "score": pytest.approx(0.42),
         "difficult": False, "key": 1},
    ]
    assert record["version"] and record["version"] != "none"
    assert load(client, "image004.png")["version"] == "none"
    image = client.get("/image/train/image001.png")
    assert image.status_code == 200 and image.data == (dataset / "train" / "image001.png").read_bytes()


def test_page_and_assets_are_served_with_a_strict_policy(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200 and b"/static/review.js" in page.data and b"{{query}}" not in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for name in ("review.js", "review.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert b"http" not in client.get("/static/review.js").data.replace(b"HTTP", b"")  # no CDN, no remote URL


def test_course_layout_and_its_own_classes(tmp_path: Path) -> None:
    from shapes_dataset import SHAPE_LABELS, write_shapes_dataset  # tools/ (pytest.ini's pythonpath)

    project = write_shapes_dataset(tmp_path / "form_detection", train=2, test=1, size=64)  # images/{train,test}
    client = create_app(project).test_client()
    data = client.get("/api/images").json
    assert data["labels"] == ["cube", "cylinder", "empty"]  # keys 1, 2, 3: by id (3, 5, 7)
    assert [r["id"] for r in data["images"]] == ["train/image00.jpg", "train/image01.jpg", "test/image00.jpg"]
    assert client.get("/image/test/image00.jpg").status_code == 200
    known = list(SHAPE_LABELS.values())
    expected: List[Tuple[str, dict]] = []
    total: Dict[str, int] = {}
    for split in ("train", "test"):
        counts = count_split(load_split(project / "images" / split, known_labels=known), SHAPE_LABELS)
        expected.append((split, counts))
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    assert data["summary"]["stats"] == format_stats(expected + [("total", total)], SHAPE_LABELS)
    record = load(client, "image00.jpg", "test")
    boxes = [dict(record["boxes"][0], label="empty")]
    assert put(client, "image00.jpg", {"version": record["version"], "boxes": boxes, "verified": True},
               "test").status_code == 200
    assert read_voc(project / "images" / "test" / "image00.xml", known).boxes[0].label == "empty"
    record = load(client, "image00.jpg", "test")
    response = put(client, "image00.jpg", {"version": record["version"], "boxes": [dict(boxes[0], label="one")],
                                           "verified": True}, "test")
    assert response.status_code == 400 and "cube, cylinder, empty" in response.json["error"]


def test_classes_of_a_fresh_data_set_and_from_a_file(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    DatasetWriter(root, labels={1: "rock", 2: "paper"}).save(frame(), None)  # captured, not pre-annotated
    (root / "label_map.pbtxt").unlink()
    assert ReviewStore(root).labels == ["rock", "paper"]  # labelImg's classes.txt
    (root / "classes.txt").unlink()
    assert ReviewStore(root).labels == ["one", "two"]  # nothing says: the digits
    (tmp_path / "mine.txt").write_text("a\nb\nc\n")
    assert ReviewStore(root, labels_file=tmp_path / "mine.txt").labels == ["a", "b", "c"]


# --------------------------------------------------------------------------- edit and accept


def test_edit_saves_labelimg_voc_at_once_and_atomically(client: Any, dataset: Path) -> None:
    before = read_voc(xml(dataset, "image001.png"))
    record = load(client, "image001.png")
    boxes = record["boxes"]
    boxes[0].update(label="two", score=None)  # class changed by a person: no score any more
    boxes[1].update(xmin=31.4, xmax=59.6)  # the page may send fractions: labelImg's integers on disk
    response = put(client, "image001.png", {"version": record["version"], "boxes": boxes, "verified": False})
    assert response.status_code == 200, response.json
    after = read_voc(xml(dataset, "image001.png"))
    assert after.boxes == [LabeledBox("two", 2, 3, 20, 30), LabeledBox("two", 31, 5, 60, 40)]
    assert [b.score for b in after.boxes] == [None, pytest.approx(0.42)]
    assert (after.filename, after.folder, after.path, after.depth) == (before.filename, before.folder, before.path, 3)
    assert not after.verified and response.json["version"] != record["version"]
    assert response.json["version"] == load(client, "image001.png")["version"]
    assert no_temporary_files(dataset)
    # delete a box
    record = response.json
    response = put(client, "image001.png", {"version": record["version"], "boxes": record["boxes"][1:],
                                            "verified": False})
    assert response.status_code == 200 and read_voc(xml(dataset, "image001.png")).boxes == [after.boxes[1]]


def test_accept_marks_verified_yes_as_labelimg_does(client: Any, dataset: Path) -> None:
    record = load(client, "image003.png")
    response = put(client, "image003.png", {"version": record["version"], "boxes": [], "verified": True})
    assert response.status_code == 200 and response.json["status"] == "reviewed"
    root = ET.parse(xml(dataset, "image003.png")).getroot()
    assert root.get("verified") == "yes" and root.find("object") is None
    assert read_voc(xml(dataset, "image003.png")).verified
    rows = {r["name"]: r["status"] for r in client.get("/api/images").json["images"]}
    assert rows["image003.png"] == "reviewed"


def test_saving_an_image_without_xml_creates_it(client: Any, dataset: Path) -> None:
    box = {"label": "one", "xmin": 1, "ymin": 2, "xmax": 10, "ymax": 12, "score": None}
    response = put(client, "image004.png", {"version": "none", "boxes": [box], "verified": True})
    assert response.status_code == 200, response.json
    ann = read_voc(xml(dataset, "image004.png"))
    assert (ann.filename, ann.width, ann.height, ann.depth, ann.folder) == ("image004.png", W, H, 3, "train")
    assert ann.boxes == [LabeledBox("one", 1, 2, 10, 12)] and ann.verified
    assert no_temporary_files(dataset)


@pytest.mark.parametrize("box, what", [
    ({"label": "three", "xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}, "unknown class"),
    ({"label": "one", "xmin": 1, "ymin": 1, "xmax": W + 1, "ymax": 5}, "outside"),
    ({"label": "one", "xmin": 5, "ymin": 1, "xmax": 5, "ymax": 5}, "empty"),
    ({"label": "one", "xmin": "1", "ymin": 1, "xmax": 5, "ymax": 5}, "not a number"),
    ({"label": "one", "xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5, "score": 2}, "score"),
])
def test_bad_boxes_are_refused_and_nothing_is_written(client: Any, dataset: Path, box: dict, what: str) -> None:
    before = xml(dataset, "image002.png").read_bytes()
    record = load(client, "image002.png")
    response = put(client, "image002.png", {"version": record["version"], "boxes": [box], "verified": False})
    assert response.status_code == 400 and what in response.json["error"]
    assert xml(dataset, "image002.png").read_bytes() == before


def test_writes_take_json_only(client: Any, dataset: Path) -> None:
    before = xml(dataset, "image002.png").read_bytes()
    response = client.put("/api/ann/train/image002.png", data={"version": "x"})  # a cross-site form's encoding
    assert response.status_code == 415
    assert client.post("/api/ann/train/image002.png", json={}).status_code == 405
    assert xml(dataset, "image002.png").read_bytes() == before


def test_bad_xml_is_listed_with_its_error_and_not_editable(client: Any, dataset: Path) -> None:
    xml(dataset, "image003.png").write_text("<annotation><filename>image003.png</filename>")
    row = next(r for r in client.get("/api/images").json["images"] if r["name"] == "image003.png")
    assert row["status"] == "bad" and "malformed XML" in row["error"]
    record = load(client, "image003.png")
    response = put(client, "image003.png", {"version": record["version"], "boxes": [], "verified": True})
    assert response.status_code == 422 and "malformed XML" in response.json["error"]
    assert xml(dataset, "image003.png").read_text() == "<annotation><filename>image003.png</filename>"


# --------------------------------------------------------------------------- conflicts


def test_save_on_a_file_changed_on_disk_is_refused_with_409(client: Any, dataset: Path) -> None:
    record = load(client, "image002.png")
    # Meanwhile another tab or tool rewrites the file (same size and second: the version still differs).
    theirs = Annotation("image002.png", W, H, 3, [LabeledBox("one", 10, 10, 30, 30)], "train", verified=True)
    write_voc(xml(dataset, "image002.png"), theirs)
    on_disk = xml(dataset, "image002.png").read_bytes()
    mine = [dict(record["boxes"][0], label="two", score=None)]
    response = put(client, "image002.png", {"version": record["version"], "boxes": mine, "verified": False})
    assert response.status_code == 409
    assert "changed on disk" in response.json["error"]
    current = response.json["current"]  # the page reloads the image from this
    assert current["boxes"][0]["label"] == "one" and current["verified"] and current["version"] != record["version"]
    assert xml(dataset, "image002.png").read_bytes() == on_disk
    # Saving on top of the current version works.
    response = put(client, "image002.png", {"version": current["version"], "boxes": mine, "verified": False})
    assert response.status_code == 200


def test_two_tabs_second_save_with_a_stale_version_is_refused(client: Any, dataset: Path) -> None:
    tab1, tab2 = load(client, "image001.png"), load(client, "image001.png")
    assert put(client, "image001.png", {"version": tab1["version"], "boxes": [], "verified": False}).status_code == 200
    response = put(client, "image001.png", {"version": tab2["version"], "boxes": tab2["boxes"], "verified": True})
    assert response.status_code == 409 and read_voc(xml(dataset, "image001.png")).boxes == []


def test_xml_that_appears_meanwhile_is_never_overwritten(client: Any, dataset: Path) -> None:
    assert load(client, "image004.png")["version"] == "none"
    write_voc(xml(dataset, "image004.png"), Annotation("image004.png", W, H, 3, [LabeledBox("two", 1, 1, 9, 9)]))
    response = put(client, "image004.png", {"version": "none", "boxes": [], "verified": True})
    assert response.status_code == 409 and response.json["current"]["boxes"][0]["label"] == "two"
    assert read_voc(xml(dataset, "image004.png")).boxes == [LabeledBox("two", 1, 1, 9, 9)]


def test_poll_generation_changes_when_capture_saves_an_image(client: Any, dataset: Path) -> None:
    before = client.get("/api/poll").json["generation"]
    assert client.get("/api/poll").json["generation"] == before  # stable while nothing changes
    DatasetWriter(dataset, test_share=0.0).save(frame(), [LabeledBox("one", 1, 1, 9, 9, 0.3)])
    assert client.get("/api/poll").json["generation"] != before
    names = [r["name"] for r in client.get("/api/images").json["images"]]
    assert names[-1] == "image005.png"


# --------------------------------------------------------------------------- only the data set's files


TRAVERSALS = [
    "/image/train/../../secret.png",
    "/image/train/..%2f..%2fsecret.png",
    "/image/train/..%2F..%2Fsecret.png",
    "/image/train%2f..%2f..%2fsecret.png",
    "/image/..%2fsecret.png/x.png",
    "/image/%2e%2e/secret.png",
    "/image/train/%2e%2e%2f%2e%2e%2fsecret.png",
    "/image/train/%252e%252e%252fsecret.png",
    "/image/train/..%5c..%5csecret.png",
    "/image/train/.%2e/secret.png",
    "/image/train/image001.xml",
    "/image/train/..",
    "/image/other/secret.png",
    "/api/ann/train/..%2f..%2fsecret.png",
    "/api/ann/train/%2e%2e%2fsecret.png",
    "/static/..%2freview.py",
    "/static/../review.py",
    "/static/%2e%2e%2f%2e%2e%2fsecret.png",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_traversal_attempts_are_refused(client: Any, dataset: Path, url: str) -> None:
    response = client.get(url)
    assert response.status_code in (403, 404), url
    assert b"secret outside" not in response.data and b"import" not in response.data


@pytest.mark.parametrize("url", [u for u in TRAVERSALS if u.startswith("/api/ann/")]
                         + ["/api/ann/train/..%2f..%2fsecret.png", "/api/ann/test/..%2ftrain%2fimage001.png"])
def test_traversal_attempts_cannot_write(client: Any, dataset: Path, url: str) -> None:
    response = client.put(url, json={"version": "none", "boxes": [], "verified": True})
    assert response.status_code in (403, 404, 405), url
    assert not (dataset.parent / "secret.xml").exists() and not (dataset / "secret.xml").exists()


def test_symlinks_out_of_the_data_set_are_neither_served_nor_written(dataset: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes((dataset / "train" / "image001.png").read_bytes())
    outside_xml = outside / "secret.xml"
    write_voc(outside_xml, Annotation("secret.png", W, H, 3, [LabeledBox("one", 1, 1, 9, 9)]))
    before = outside_xml.read_bytes()
    (dataset / "train" / "escape.png").symlink_to(outside / "secret.png")
    (dataset / "train" / "escape.xml").symlink_to(outside_xml)
    # an image inside whose XML is a link out
    (dataset / "train" / "image003.xml").unlink()
    (dataset / "train" / "image003.xml").symlink_to(outside_xml)
    # a link to a file inside the data set is fine
    (dataset / "train" / "alias.png").symlink_to(dataset / "train" / "image002.png")
    client = create_app(dataset).test_client()
    for name in ("escape.png", "image003.png"):
        assert client.get(f"/image/train/{name}").status_code == 404
        assert client.get(f"/api/ann/train/{name}").status_code == 404
        response = client.put(f"/api/ann/train/{name}", json={"version": "none", "boxes": [], "verified": True})
        assert response.status_code == 404
    assert outside_xml.read_bytes() == before
    rows = {r["name"]: r for r in client.get("/api/images").json["images"]}
    assert rows["escape.png"]["status"] == "bad" and "leads out" in rows["escape.png"]["error"]
    assert rows["image003.png"]["status"] == "bad"
    assert client.get("/image/train/alias.png").status_code == 200
    # a whole split that is a link out of the data set
    (outside / "test").mkdir()
    (outside / "test" / "x.png").write_bytes((dataset / "train" / "image001.png").read_bytes())
    (dataset / "test").rmdir()
    (dataset / "test").symlink_to(outside / "test")
    assert create_app(dataset).test_client().get("/image/test/x.png").status_code == 404


def test_loopback_server_refuses_other_host_names(client: Any) -> None:
    # DNS rebinding: a page of evil.example that resolves its name to 127.0.0.1.
    assert client.get("/api/images", headers={"Host": "evil.example:8765"}).status_code == 403
    assert client.get("/api/images", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/api/images", headers={"Host": "localhost"}).status_code == 200


# --------------------------------------------------------------------------- real servers, token


def fetch(url: str, headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_default_server_binds_loopback_without_token(dataset: Path) -> None:
    url, stop = serve_in_thread(dataset, port=0)
    try:
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        status, body = fetch(url + "api/images")
        assert status == 200 and len(json.loads(body)["images"]) == 4
    finally:
        stop()
        stop()  # twice is harmless


def test_token_required_off_localhost(dataset: Path) -> None:
    url, stop = serve_in_thread(dataset, host="0.0.0.0", port=0)
    try:
        assert "?token=" in url
        token = url.split("?token=", 1)[1]
        assert len(token) >= 20
        port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/api/images", "/api/poll", "/static/review.js", "/image/train/image001.png",
                     "/api/ann/train/image001.png"):
            assert fetch(base + path)[0] == 403, path
            assert fetch(base + path + "?token=wrong" + token[5:])[0] == 403, path
            assert fetch(base + path + "?token=" + token)[0] == 200, path
            assert fetch(base + path, {"X-Review-Token": token})[0] == 200, path
        status, page = fetch(f"{base}/?token={token}")
        assert f"/static/review.js?token={token}".encode() in page  # the page's own requests carry it
    finally:
        stop()


def test_port_taken_is_one_clear_error(dataset: Path) -> None:
    url, stop = serve_in_thread(dataset, port=0)
    try:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with pytest.raises(CubeDetectError, match=f"cannot serve the review page on 127.0.0.1:{port}"):
            serve_in_thread(dataset, port=port)
    finally:
        stop()


def test_missing_dataset_and_missing_flask_are_one_line_errors(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(CubeDetectError, match="does not exist"):
        ReviewStore(tmp_path / "nowhere")
    code = ("import sys\nsys.modules['flask'] = None\nfrom cube_detect.cli import main\n"
            f"sys.exit(main(['review', {str(dataset)!r}, '--port', '0']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines: List[str] = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pip install" in lines[0], proc.stderr


def test_command_help_needs_no_flask() -> None:
    code = ("import sys\nsys.modules['flask'] = None\nfrom cube_detect.cli import main\n"
            "try:\n    main(['review', '--help'])\nexcept SystemExit as e:\n    sys.exit(e.code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--host" in proc.stdout and "--port" in proc.stdout


def test_unwritable_folder_is_a_clear_error_and_nothing_changes(client: Any, dataset: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cube_detect.review_store.write_voc", full_disk)
    monkeypatch.setattr("cube_detect.review_store.create_exclusive", full_disk)
    before = xml(dataset, "image002.png").read_bytes()
    record = load(client, "image002.png")
    response = put(client, "image002.png", {"version": record["version"], "boxes": [], "verified": True})
    assert response.status_code == 507 and "No space left" in response.json["error"]
    response = put(client, "image004.png", {"version": "none", "boxes": [], "verified": True})
    assert response.status_code == 507 and not xml(dataset, "image004.png").exists()
    assert xml(dataset, "image002.png").read_bytes() == before and no_temporary_files(dataset)


# --------------------------------------------------------------------------- issue 21: what a save keeps

# What labelImg writes for image001.png (64x48), plus what people and other tools add: attributes,
# a source with more than "Unknown", a teacher's <owner>, a pose, a difficult face, a note.
LABELIMG_XML = (Path(__file__).parent / "fixtures" / "labelimg_teacher_small.xml").read_text()


@pytest.fixture()
def labelimg(dataset: Path) -> Path:
    """image001's XML as labelImg and a teacher wrote it."""
    path = xml(dataset, "image001.png")
    path.write_text(LABELIMG_XML)
    return path


def objects(path: Path) -> List[Dict[str, str]]:
    """Each <object> as {tag: text} (bndbox flattened), as the file says."""
    found = []
    for obj in ET.parse(path).getroot().findall("object"):
        fields = {child.tag: (child.text or "").strip() for child in obj if child.tag != "bndbox"}
        fields.update({child.tag: child.text or "" for child in obj.find("bndbox")})
        found.append(fields)
    return found


def test_load_shows_difficult_and_each_box_key(client: Any, labelimg: Path) -> None:
    record = load(client, "image001.png")
    assert [(b["label"], b["difficult"], b["key"]) for b in record["boxes"]] == [("one", True, 0), ("two", False, 1)]
    assert record["verified"] and record["status"] == "reviewed"
    total = client.get("/api/summary").json["rows"][-1]
    # the data set holds 3 faces, one of them (this image's one) difficult: its own column, as `stats`
    assert (total["split"], total["faces"], total["difficult"]) == ("total", 3, 1)


def test_a_save_of_what_was_loaded_gives_back_the_same_file(client: Any, labelimg: Path) -> None:
    record = load(client, "image001.png")
    response = put(client, "image001.png", {"version": record["version"], "boxes": record["boxes"], "verified": True})
    assert response.status_code == 200, response.json
    assert labelimg.read_text() == LABELIMG_XML  # byte for byte: nothing the user wrote is lost


def test_a_save_keeps_what_the_page_does_not_show_and_recomputes_truncated_of_moved_boxes(
        client: Any, labelimg: Path) -> None:
    record = load(client, "image001.png")
    first, second = record["boxes"]
    first.update(difficult=False)  # toggled off (d): kept where it is
    second.update(xmin=36, xmax=61)  # moved: truncated is recomputed (labelImg's rule)
    new = {"label": "two", "xmin": 2, "ymin": 2, "xmax": 9, "ymax": 9, "score": None}  # drawn: no key
    response = put(client, "image001.png", {"version": record["version"], "boxes": [first, second, new],
                                            "verified": False})
    assert response.status_code == 200, response.json
    root = ET.parse(labelimg).getroot()
    assert root.attrib == {"lang": "fr"}  # verified dropped (unaccepted), the other attribute kept
    assert root.findtext("source/database") == "ROS4PRO Lyon" and root.findtext("owner/name") == "Mme Martin"
    assert root.findtext("path") == "/home/eleve/cubes/train/image001.png"
    one, two, drawn = objects(labelimg)
    assert (one["pose"], one["truncated"], one["difficult"], one["note"]) == ("Frontal", "1", "0", "smudged")
    assert (two["pose"], two["truncated"], two["difficult"], two["xmin"]) == ("Left", "0", "0", "36")
    assert (drawn["pose"], drawn["truncated"], drawn["difficult"]) == ("Unspecified", "0", "0")
    # The page renumbers its keys after a save: the file now lists the boxes it sent, in order.
    record = response.json
    assert [b["key"] for b in record["boxes"]] == [0, 1, 2]
    boxes = record["boxes"]
    boxes[2]["difficult"] = True
    del boxes[0]["difficult"]  # not sent: the file's value stays
    response = put(client, "image001.png", {"version": record["version"], "boxes": boxes[::-1], "verified": True})
    assert response.status_code == 200, response.json
    drawn, two, one = objects(labelimg)
    assert drawn["difficult"] == "1" and one["note"] == "smudged" and one["difficult"] == "0" and two["pose"] == "Left"


@pytest.mark.parametrize("change, what", [
    ({"key": 2}, "key must be null"),
    ({"key": -1}, "key must be null"),
    ({"key": True}, "key must be null"),
    ({"key": "0"}, "key must be null"),
    ({"difficult": 1}, "difficult must be true or false"),
    ({"difficult": "yes"}, "difficult must be true or false"),
])
def test_bad_keys_and_difficult_flags_are_refused(client: Any, labelimg: Path, change: dict, what: str) -> None:
    record = load(client, "image001.png")
    boxes = record["boxes"]
    boxes[1].update(change)
    response = put(client, "image001.png", {"version": record["version"], "boxes": boxes, "verified": True})
    assert response.status_code == 400 and what in response.json["error"]
    assert labelimg.read_text() == LABELIMG_XML


def test_two_boxes_cannot_claim_the_same_key(client: Any, labelimg: Path) -> None:
    record = load(client, "image001.png")
    boxes = [record["boxes"][0], dict(record["boxes"][0])]
    response = put(client, "image001.png", {"version": record["version"], "boxes": boxes, "verified": True})
    assert response.status_code == 400 and "key 0" in response.json["error"]
    assert labelimg.read_text() == LABELIMG_XML


def test_a_symlinked_xml_is_never_written_through(client: Any, dataset: Path) -> None:
    # image002.xml is a link to image003.xml, inside the data set (so it can be read and listed).
    target = xml(dataset, "image003.png")
    write_voc(target, Annotation("image002.png", W, H, 3, [LabeledBox("two", 10, 10, 30, 30)], "train"))
    before = target.read_bytes()
    xml(dataset, "image002.png").unlink()
    xml(dataset, "image002.png").symlink_to(target.name)
    record = load(client, "image002.png")
    response = put(client, "image002.png", {"version": record["version"], "boxes": [], "verified": True})
    assert response.status_code == 403 and "symlink" in response.json["error"]
    assert target.read_bytes() == before and xml(dataset, "image002.png").is_symlink()
    # A dangling link where a new XML would go: not created through it either.
    xml(dataset, "image004.png").symlink_to("planted.xml")
    response = put(client, "image004.png", {"version": "none", "boxes": [], "verified": True})
    assert response.status_code == 403 and "symlink" in response.json["error"]
    assert not (dataset / "train" / "planted.xml").exists() and no_temporary_files(dataset)


def test_a_split_folder_leading_out_is_refused_by_the_file_module_too(dataset: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: even if the store's own path check let it through, files.py refuses a
    write whose folder resolves outside the data set (the review passes root=<real data set>)."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.png").write_bytes((dataset / "train" / "image001.png").read_bytes())
    write_voc(outside / "y.xml", Annotation("y.png", W, H, 3, []))
    (outside / "y.png").write_bytes((dataset / "train" / "image001.png").read_bytes())
    before = (outside / "y.xml").read_bytes()
    (dataset / "test").rmdir()
    (dataset / "test").symlink_to(outside)
    monkeypatch.setattr(ReviewStore, "inside", lambda self, path: True)
    client = create_app(dataset).test_client()
    response = put(client, "x.png", {"version": "none", "boxes": [], "verified": True}, "test")
    assert response.status_code == 403 and "outside" in response.json["error"]
    record = load(client, "y.png", "test")
    response = put(client, "y.png", {"version": record["version"], "boxes": [], "verified": True}, "test")
    assert response.status_code == 403 and "outside" in response.json["error"]
    assert sorted(p.name for p in outside.iterdir()) == ["x.png", "y.png", "y.xml"]
    assert (outside / "y.xml").read_bytes() == before


# --------------------------------------------------------------------------- issue 21: edits from outside


def test_an_outside_write_between_version_check_and_rename_is_a_409(client: Any, dataset: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """labelImg rewrites the file in place while the server writes its temporary file: the stat
    check just before the rename sees it; their file stays, ours is not written."""
    import cube_detect.review_store as review_store

    path = xml(dataset, "image002.png")
    theirs = format_voc(Annotation("image002.png", W, H, 3, [LabeledBox("one", 1, 1, 9, 9)], "train"))
    real_write_voc = review_store.write_voc

    def labelimg_meanwhile(*args: Any, **kwargs: Any) -> None:
        with open(path, "w") as handle:  # in place, as labelImg's writer does
            handle.write(theirs)
        real_write_voc(*args, **kwargs)

    monkeypatch.setattr(review_store, "write_voc", labelimg_meanwhile)
    record = load(client, "image002.png")
    response = put(client, "image002.png", {"version": record["version"], "boxes": [], "verified": True})
    assert response.status_code == 409 and "while saving" in response.json["error"]
    assert path.read_text() == theirs and response.json["current"]["boxes"][0]["label"] == "one"
    assert no_temporary_files(dataset)


def test_an_xml_created_from_outside_during_the_save_is_kept(client: Any, dataset: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import cube_detect.review_store as review_store

    path = xml(dataset, "image004.png")
    theirs = format_voc(Annotation("image004.png", W, H, 3, [LabeledBox("two", 1, 1, 9, 9)], "train"))
    real_create = review_store.create_exclusive

    def capture_meanwhile(*args: Any, **kwargs: Any) -> bool:
        path.write_text(theirs)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(review_store, "create_exclusive", capture_meanwhile)
    response = put(client, "image004.png", {"version": "none", "boxes": [], "verified": True})
    assert response.status_code == 409 and path.read_text() == theirs and no_temporary_files(dataset)


# --------------------------------------------------------------------------- issue 21: one bad entry, one bad row


def png_header(width: int, height: int, colour_type: int = 2) -> bytes:
    """The first bytes of a PNG that claims ``width`` x ``height`` (no pixel data after them)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64


def test_header_depth_and_size_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    from cube_detect.imageinfo import image_header

    cv2.imwrite(str(tmp_path / "gray.png"), np.zeros((H, W), np.uint8))
    cv2.imwrite(str(tmp_path / "colour.png"), np.zeros((H, W, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "gray.jpg"), np.zeros((H, W), np.uint8))
    cv2.imwrite(str(tmp_path / "colour.jpg"), np.zeros((H, W, 3), np.uint8))
    (tmp_path / "huge.png").write_bytes(png_header(10000, 10000, colour_type=0))

    def no_decoding(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("decoded an image to learn its size or depth")

    monkeypatch.setattr(cv2, "imread", no_decoding)
    assert image_header(tmp_path / "gray.png") == (W, H, 1)
    assert image_header(tmp_path / "colour.png") == (W, H, 3)
    assert image_header(tmp_path / "gray.jpg") == (W, H, 1)
    assert image_header(tmp_path / "colour.jpg") == (W, H, 3)
    assert image_header(tmp_path / "huge.png") == (10000, 10000, 1)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(CubeDetectError, match="junk.png: no PNG or JPEG header"):
        image_header(tmp_path / "junk.png")


def test_one_bad_entry_is_one_bad_row_never_a_500(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    import cube_detect.imageinfo as imageinfo

    train = dataset / "train"
    good = (train / "image001.png").read_bytes()
    (train / "loop.png").symlink_to("loop.png")  # a symbolic link loop
    (train / "a.png").symlink_to("b.png")
    (train / "b.png").symlink_to("a.png")
    (train / "gone.png").symlink_to("nothing-here.png")  # dangling
    (train / "folder.png").mkdir()  # a folder named like an image
    (train / "twin.png").write_bytes(good)  # two images, one stem, one XML
    (train / "twin.jpg").write_bytes(good)
    (train / "absurd.png").write_bytes(png_header(4294967280, 4294967280))
    (train / "wide.png").write_bytes(png_header(30000, 10))
    (train / "big.png").write_bytes(png_header(10000, 10000, colour_type=0))  # large, but an image
    (train / "locked.png").write_bytes(good)  # unreadable (tests run as root: simulated below)
    (train / "knot.png").write_bytes(good)  # an image whose XML is a link loop
    (train / "knot.xml").symlink_to("knot.xml")
    if os.geteuid() != 0:
        (train / "locked.png").chmod(0)
    real_read_header = imageinfo._read_header

    def read_header(path: Path) -> Any:
        if Path(path).name == "locked.png":
            raise PermissionError(13, "Permission denied")
        return real_read_header(path)

    monkeypatch.setattr(imageinfo, "_read_header", read_header)

    def no_decoding(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("decoded an image while listing")

    monkeypatch.setattr(cv2, "imread", no_decoding)
    client = create_app(dataset).test_client()
    for url in ("/api/images", "/api/poll", "/api/summary"):
        assert client.get(url).status_code == 200, url
    rows = {r["name"]: r for r in client.get("/api/images").json["images"]}
    expected = {"loop.png": "symbolic link loop", "a.png": "symbolic link loop", "b.png": "symbolic link loop",
                "gone.png": "link to nothing", "folder.png": "not a regular file", "twin.png": "share the stem",
                "twin.jpg": "share the stem", "absurd.png": "4294967280x4294967280",
                "wide.png": "more than 20000", "locked.png": "Permission denied",
                "knot.png": "XML knot.xml is a symbolic link loop"}
    for name, reason in expected.items():
        assert rows[name]["status"] == "bad" and reason in rows[name]["error"], rows[name]
    assert rows["big.png"]["status"] == "no-xml" and rows["image001.png"]["status"] == "unreviewed"
    train_row = next(r for r in client.get("/api/summary").json["rows"] if r["split"] == "train")
    assert train_row["bad"] == len(expected) and train_row["images"] == 3
    # None of them can be edited: the load says why, a save is refused and writes nothing.
    for name in expected:
        record = load(client, name)
        assert record["status"] == "bad" and record["boxes"] == [], name
        response = put(client, name, {"version": record["version"], "boxes": [], "verified": True})
        assert response.status_code == 422 and "cannot edit" in response.json["error"], name
    assert not [p for p in train.iterdir() if p.suffix == ".xml" and p.stem in
                {"loop", "a", "b", "gone", "folder", "twin", "absurd", "wide", "locked"}]
    assert (train / "knot.xml").is_symlink() and os.readlink(train / "knot.xml") == "knot.xml"
    assert client.get("/image/train/loop.png").status_code == 404
    # The large image is listed and saved from its header alone (depth 1: grayscale), never decoded.
    record = load(client, "big.png")
    assert (record["width"], record["height"]) == (10000, 10000)
    response = put(client, "big.png", {"version": "none", "boxes": [], "verified": True})
    assert response.status_code == 200, response.json
    ann = read_voc(xml(dataset, "big.png"))
    assert (ann.width, ann.height, ann.depth) == (10000, 10000, 1)


# --------------------------------------------------------------------------- issue 21: on the LAN


def test_over_deep_json_and_out_of_range_numbers_answer_400(client: Any, dataset: Path) -> None:
    before = xml(dataset, "image002.png").read_bytes()
    version = load(client, "image002.png")["version"]

    def raw_put(text: str) -> Any:
        return client.put("/api/ann/train/image002.png", data=text, content_type="application/json")

    deep = raw_put("[" * 100_000 + "]" * 100_000)
    assert deep.status_code == 400 and "too deep" in deep.json["error"]
    box = '{{"label": "one", "xmin": {}, "ymin": 1, "xmax": 9, "ymax": 9, "score": {}, "key": {}}}'
    for xmin, score, key, what in (("1e400", "null", "null", "finite"), (str(10 ** 400), "null", "null", "range"),
                                   ("-1e400", "null", "null", "finite"), ("NaN", "null", "null", "finite"),
                                   ("1", "1e400", "null", "score"), ("1", str(10 ** 400), "null", "score"),
                                   ("1", "null", str(10 ** 400), "key"), ("1" * 5000, "null", "null", "JSON")):
        body = f'{{"version": "{version}", "verified": false, "boxes": [{box.format(xmin, score, key)}]}}'
        response = raw_put(body)
        assert response.status_code == 400 and what in response.json["error"], (xmin[:20], score[:20], key[:20])
        assert len(response.json["error"]) < 300
    assert xml(dataset, "image002.png").read_bytes() == before


def test_every_answer_has_cross_origin_resource_policy(client: Any) -> None:
    for method, url, status in (("get", "/", 200), ("get", "/static/review.js", 200), ("get", "/api/images", 200),
                                ("get", "/image/train/image001.png", 200), ("get", "/image/train/nope.png", 404),
                                ("post", "/api/ann/train/image001.png", 405),
                                ("put", "/api/ann/train/image001.png", 415)):
        response = getattr(client, method)(url)
        assert response.status_code == status, url
        assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin", url


def test_the_page_survives_a_malformed_fragment() -> None:
    script = (Path(__file__).resolve().parents[1] / "src/cube_detect/review_static/review.js").read_text()
    call = script.index("decodeURIComponent(location.hash")
    assert "try {" in script[call - 80:call], "decodeURIComponent of the fragment must be guarded (URIError)"


def test_the_token_is_never_logged(dataset: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url, stop = serve_in_thread(dataset, host="0.0.0.0", port=0)
    token = url.split("?token=", 1)[1]
    port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    try:
        assert fetch(f"{base}/api/ann/train/nope.png?token={token}")[0] == 404  # an error answer, with the token
        assert fetch(f"{base}/api/images?x=1&token={token}")[0] == 200
        assert fetch(f"{base}/api/images?token={token[:-2]}xy")[0] == 403  # a near miss
        assert fetch(f"{base}/image/train/nope.png", {"X-Review-Token": token})[0] == 404
    finally:
        stop()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in text and token[:-2] not in text
    assert "GET /api/ann/train/nope.png?token=[hidden] -> 404" in text  # error answers: logged, scrubbed
    assert "GET /api/images?token=[hidden] -> 403" in text
    assert f"review page: {url.split('?', 1)[0]}?token=[hidden]" in text


def test_the_capture_node_prints_the_tokened_url_and_logs_it_without(dataset: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("rospy", reason="the capture node needs ROS (source tools/env.sh)")
    from cube_detect.ros import capture_node

    logged: List[str] = []
    monkeypatch.setattr(capture_node.rospy, "loginfo", lambda msg, *args: logged.append(msg % args))
    stop = capture_node.start_review(dataset, "0.0.0.0", 0)
    assert stop is not None
    stop()
    printed = capsys.readouterr().out
    token = printed.split("?token=", 1)[1].split()[0]
    assert len(token) >= 20 and printed.count(token) == 1
    assert len(logged) == 1 and token not in logged[0] and "review page http://" in logged[0]


def test_missing_waitress_is_a_one_line_error(dataset: Path) -> None:
    code = ("import sys\nsys.modules['waitress'] = None\nfrom cube_detect.cli import main\n"
            f"sys.exit(main(['review', {str(dataset)!r}, '--port', '0']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "waitress" in lines[0] and "pip install" in lines[0], proc.stderr


HALF_OPEN = 500


def test_half_open_connections_neither_block_the_page_nor_stay(dataset: Path) -> None:
    """500 clients that send half a request line and then nothing (slowloris; 127.0.0.1 only,
    all closed at the end): a real client still gets the page within 5 s, no thread is pinned,
    and the server drops them after its idle timeout (2 s here, 20 s by default)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * HALF_OPEN + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    threads_before = threading.active_count()
    timeout = 2
    url, stop = serve_in_thread(dataset, port=0, settings={"channel_timeout": timeout, "cleanup_interval": 1})
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    held: List[socket.socket] = []
    try:
        for _ in range(HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /api/images HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            held.append(sock)
        sent = time.monotonic()
        status, body = fetch(url)
        page_s = time.monotonic() - sent
        assert status == 200 and b"review.js" in body and page_s < 5, page_s
        threads = threading.active_count() - threads_before
        assert threads <= 8 + 1, f"{threads} threads for {HALF_OPEN} half-open connections"
        # Every half-open connection is closed by the server (EOF or reset), after the timeout.
        open_ones = set(held)
        deadline = sent + timeout + 15
        with selectors.DefaultSelector() as waiting:  # epoll: descriptors above 1024 are fine
            for sock in held:
                waiting.register(sock, selectors.EVENT_READ)
            while open_ones and time.monotonic() < deadline:
                for key, _ in waiting.select(0.5):
                    sock = key.fileobj  # type: ignore[assignment]
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        open_ones.discard(sock)
                        waiting.unregister(sock)
        dropped_s = time.monotonic() - sent
        assert not open_ones, f"{len(open_ones)} of {HALF_OPEN} still open after {dropped_s:.1f} s"
        assert dropped_s >= timeout - 0.5  # by the timeout, not at once
        print(f"\n{HALF_OPEN} half-open connections: page in {page_s * 1000:.0f} ms, {threads} server threads, "
              f"all dropped {dropped_s:.1f} s after the last was opened (channel_timeout {timeout} s)")
    finally:
        for sock in held:
            sock.close()
        stop()
    with pytest.raises(OSError):  # stop() closed the port
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
