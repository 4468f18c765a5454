"""labelImg VOC reading/writing, data-set checks and the `stats` command (no ROS, no TF)."""

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from cube_detect import cli
from cube_detect.dataset import load_split
from cube_detect.errors import DatasetError
from cube_detect.imageinfo import image_size
from cube_detect.voc import Annotation, LabeledBox, format_voc, read_voc, write_voc

# What labelImg (libs/pascal_voc_io.py) writes: lxml pretty print, two spaces -> one tab,
# no XML declaration, <path> after <filename>, truncated by its own rule.
LABELIMG_TEXT = """<annotation>
\t<folder>train</folder>
\t<filename>image007.png</filename>
\t<path>/home/poppy/cubes/train/image007.png</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>640</width>
\t\t<height>480</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>one</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>100</xmin>
\t\t\t<ymin>120</ymin>
\t\t\t<xmax>260</xmax>
\t\t\t<ymax>290</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>two</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>450</xmin>
\t\t\t<ymin>300</ymin>
\t\t\t<xmax>640</xmax>
\t\t\t<ymax>480</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""

ANN = Annotation(
    filename="image007.png", width=640, height=480, depth=3,
    boxes=[LabeledBox("one", 100, 120, 260, 290), LabeledBox("two", 450, 300, 640, 480)],
    folder="train", path="/home/poppy/cubes/train/image007.png",
)


def make_sample(directory: Path, stem: str, boxes, size=(64, 48), suffix=".png", xml_size=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    image_path = directory / f"{stem}{suffix}"
    cv2.imwrite(str(image_path), np.full((size[1], size[0], 3), 40, np.uint8))
    width, height = xml_size or size
    write_voc(directory / f"{stem}.xml", Annotation(image_path.name, width, height, 3, list(boxes), directory.name))
    return image_path


def assert_names_file_and_line(exc: DatasetError, name: str, line=None) -> None:
    message = str(exc)
    match = re.search(re.escape(name) + r":(\d+):", message)
    assert match, message
    if line is not None:
        assert int(match.group(1)) == line, message


# --------------------------------------------------------------------------- write / read


def test_write_voc_is_labelimg_layout(tmp_path):
    assert format_voc(ANN) == LABELIMG_TEXT
    write_voc(tmp_path / "a.xml", ANN)
    assert (tmp_path / "a.xml").read_text(encoding="utf-8") == LABELIMG_TEXT
    assert [p.name for p in tmp_path.iterdir()] == ["a.xml"]  # no temporary file left


def test_output_parses_with_elementtree_in_labelimg_order(tmp_path):
    write_voc(tmp_path / "a.xml", ANN)
    root = ET.parse(tmp_path / "a.xml").getroot()
    assert root.tag == "annotation"
    assert [c.tag for c in root] == ["folder", "filename", "path", "source", "size", "segmented", "object", "object"]
    assert [c.tag for c in root.find("size")] == ["width", "height", "depth"]
    assert [c.tag for c in root.find("source")] == ["database"]
    obj = root.find("object")
    assert [c.tag for c in obj] == ["name", "pose", "truncated", "difficult", "bndbox"]
    assert [c.tag for c in obj.find("bndbox")] == ["xmin", "ymin", "xmax", "ymax"]
    assert root.findtext("source/database") == "Unknown" and root.findtext("segmented") == "0"


def test_round_trip(tmp_path):
    write_voc(tmp_path / "a.xml", ANN)
    assert read_voc(tmp_path / "a.xml") == ANN
    empty = Annotation("b.jpg", 752, 480, 1, [])
    write_voc(tmp_path / "b.xml", empty)
    assert read_voc(tmp_path / "b.xml") == empty
    assert "<path>" not in (tmp_path / "b.xml").read_text()


def test_reads_labelimg_variants(tmp_path):
    # verified attribute, float coordinates (some tools), no <path>, extra elements
    text = LABELIMG_TEXT.replace("<annotation>", '<annotation verified="yes">')
    text = text.replace("<xmin>100</xmin>", "<xmin>100.0</xmin>")
    text = text.replace("\t<path>/home/poppy/cubes/train/image007.png</path>\n", "")
    (tmp_path / "v.xml").write_text('<?xml version="1.0" ?>\n' + text)
    ann = read_voc(tmp_path / "v.xml")
    assert ann.boxes == ANN.boxes and ann.path == "" and (ann.width, ann.height) == (640, 480)


# --------------------------------------------------------------------------- bad files


def test_malformed_xml_names_file_and_parser_line(tmp_path):
    bad = LABELIMG_TEXT.replace("<pose>Unspecified</pose>", "<pose>Unspecified</pse>", 1)
    (tmp_path / "bad.xml").write_text(bad)
    line = bad.splitlines().index("\t\t<pose>Unspecified</pse>") + 1
    with pytest.raises(DatasetError) as err:
        read_voc(tmp_path / "bad.xml")
    assert_names_file_and_line(err.value, "bad.xml", line)
    assert "malformed" in str(err.value)


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("<xmax>640</xmax>", "<xmax>641</xmax>", "outside"),
        ("<ymin>120</ymin>", "<ymin>-3</ymin>", "outside"),
        ("<xmin>100</xmin>", "<xmin>260</xmin>", "xmin < xmax"),
        ("<name>two</name>", "<name>three</name>", "unknown class 'three'"),
        ("<xmax>640</xmax>", "<xmax>wide</xmax>", "not a number"),
    ],
)
def test_bad_annotation_names_file_and_line(tmp_path, old, new, words):
    text = LABELIMG_TEXT.replace(old, new, 1)
    (tmp_path / "img.xml").write_text(text)
    # the line of the offending element (its <bndbox>, or the element itself)
    lines = text.splitlines()
    changed = next(i for i, line in enumerate(lines) if new in line) + 1
    if "name" in new or "wide" in new:
        expected = changed
    else:
        expected = max(i + 1 for i, line in enumerate(lines[:changed]) if "<bndbox>" in line)
    with pytest.raises(DatasetError) as err:
        read_voc(tmp_path / "img.xml")
    assert_names_file_and_line(err.value, "img.xml", expected)
    assert words in str(err.value)


def test_missing_image_and_size_mismatch(tmp_path):
    split = tmp_path / "train"
    make_sample(split, "a", [LabeledBox("one", 2, 2, 30, 30)])
    (split / "a.png").unlink()
    with pytest.raises(DatasetError) as err:
        load_split(split)
    assert_names_file_and_line(err.value, "a.xml", 3)  # the <filename> line
    assert "missing image" in str(err.value)

    split2 = tmp_path / "test"
    make_sample(split2, "b", [LabeledBox("two", 2, 2, 30, 30)], size=(64, 48), xml_size=(640, 480))
    with pytest.raises(DatasetError) as err:
        load_split(split2)
    assert_names_file_and_line(err.value, "b.xml", 7)  # the <size> line
    assert "64x48" in str(err.value) and "640x480" in str(err.value)


def test_image_without_xml_is_an_error(tmp_path):
    split = tmp_path / "train"
    make_sample(split, "a", [])
    cv2.imwrite(str(split / "lonely.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match="lonely.jpg"):
        load_split(split)


def test_skip_bad_warns_and_continues(tmp_path, caplog):
    split = tmp_path / "train"
    make_sample(split, "a_good", [LabeledBox("one", 1, 1, 20, 20)])
    make_sample(split, "b_bad", [LabeledBox("one", 1, 1, 20, 20)])
    (split / "b_bad.xml").write_text((split / "b_bad.xml").read_text().replace("one", "seven"))
    make_sample(split, "c_good", [LabeledBox("two", 1, 1, 20, 20)], suffix=".jpg")
    (split / "d_broken.xml").write_text("<annotation><size>")
    cv2.imwrite(str(split / "d_broken.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError):
        load_split(split)
    with caplog.at_level(logging.WARNING):
        samples = load_split(split, skip_bad=True)
    assert [s.image_path.name for s in samples] == ["a_good.png", "c_good.jpg"]
    assert [s.annotation.boxes[0].label for s in samples] == ["one", "two"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "b_bad.xml" in warnings[0] and "d_broken.xml" in warnings[1]


def test_image_size_from_headers(tmp_path):
    for name in ("x.png", "x.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((37, 53, 3), np.uint8))
        assert image_size(tmp_path / name) == (53, 37)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="junk.png"):
        image_size(tmp_path / "junk.png")


# --------------------------------------------------------------------------- data set and stats


def build_dataset(root: Path) -> None:
    make_sample(root / "train", "i1", [LabeledBox("one", 1, 1, 20, 20), LabeledBox("two", 21, 1, 40, 20)])
    make_sample(root / "train", "i2", [LabeledBox("two", 1, 1, 20, 20, difficult=True)], suffix=".jpeg")
    make_sample(root / "train", "i3", [])
    make_sample(root / "test", "t1", [LabeledBox("one", 5, 5, 25, 25)])


def test_load_split_of_each_split(tmp_path):
    build_dataset(tmp_path)
    train, test = load_split(tmp_path / "train"), load_split(tmp_path / "test")
    assert [s.image_path.name for s in train] == ["i1.png", "i2.jpeg", "i3.png"]
    assert [len(s.annotation.boxes) for s in train] == [2, 1, 0]
    assert [s.annotation.boxes for s in test] == [[LabeledBox("one", 5, 5, 25, 25)]]


def test_stats_command(tmp_path, capsys):
    build_dataset(tmp_path)
    assert cli.main(["stats", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    # a difficult face counts in its class and again in its own column (i2's two)
    assert rows["split"] == ["images", "faces", "one", "two", "difficult"]
    assert rows["train"] == ["3", "3", "1", "2", "1"]
    assert rows["test"] == ["1", "1", "1", "0", "0"]
    assert rows["total"] == ["4", "4", "2", "2", "1"]


def test_stats_bad_file_one_line_error_then_skip_bad(tmp_path, capsys):
    build_dataset(tmp_path)
    (tmp_path / "test" / "t1.xml").write_text("<annotation>\n<size>\n</annotation>\n")
    assert cli.main(["stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "t1.xml:3:" in err
    assert cli.main(["stats", str(tmp_path), "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 bad file" in out
    assert next(line for line in out.splitlines() if line.startswith("test")).split()[1:] == ["0"] * 5


def test_stats_missing_dataset(tmp_path, capsys):
    assert cli.main(["stats", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
