"""Data sets keep what users wrote: a labelImg XML read and written back keeps every field we
do not change, writes never go through a symlink or outside the data set, and a face marked
``difficult`` follows VOC's rule in evaluation and is a don't-care region in training."""

import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from lxml import etree

from cube_detect.boxes import BBox
from cube_detect.files import UnsafePathError, atomic_write_text, create_exclusive
from cube_detect.metrics import summarize
from cube_detect.model import IGNORE, encode_targets
from cube_detect.modelspec import ModelSpec
from cube_detect.samples import DIFFICULT, ground_truth, to_sample
from cube_detect.voc import LabeledBox, read_voc, write_voc

# What labelImg writes, plus what people and other tools add: a teacher's <owner>, a source
# with more than labelImg's "Unknown", a pose, a difficult face, a per-object note.
LABELIMG_XML = (Path(__file__).parent / "fixtures" / "labelimg_teacher.xml").read_text()


def tree(text):
    return etree.tostring(etree.fromstring(text.encode()), method="c14n")


def test_a_labelimg_file_written_back_is_the_same_file(tmp_path):
    xml = tmp_path / "image007.xml"
    xml.write_text(LABELIMG_XML)
    ann = read_voc(xml)
    assert ann.verified and ann.boxes[0].difficult and ann.boxes[0].pose == "Frontal"
    assert ann.boxes[0].extra == ("<note>smudged</note>",) and "ROS4PRO Lyon" in ann.source
    write_voc(xml, ann)
    assert xml.read_text() == LABELIMG_XML  # byte for byte


def test_only_what_the_user_changed_changes(tmp_path):
    xml = tmp_path / "image007.xml"
    xml.write_text(LABELIMG_XML)
    ann = read_voc(xml)
    # The reviewer moved the first box (labelImg's rule recomputes truncated) and un-accepted.
    moved = LabeledBox("one", 12, 22, 112, 142, difficult=True, pose="Frontal", extra=ann.boxes[0].extra)
    write_voc(xml, dataclasses.replace(ann, boxes=[moved, ann.boxes[1]], verified=False))
    expected = (LABELIMG_XML.replace('<annotation verified="yes" lang="fr">', '<annotation lang="fr">')
                .replace("<xmin>10<", "<xmin>12<").replace("<ymin>20<", "<ymin>22<")
                .replace("<xmax>110<", "<xmax>112<").replace("<ymax>140<", "<ymax>142<")
                .replace("<truncated>1</truncated>\n\t\t<difficult>1", "<truncated>0</truncated>\n\t\t<difficult>1"))
    assert tree(xml.read_text()) == tree(expected)


def test_no_write_goes_through_a_planted_symlink(tmp_path):
    data, outside = tmp_path / "ds" / "train", tmp_path / "victim.txt"
    data.mkdir(parents=True)
    outside.write_text("precious")
    xml = data / "image001.xml"
    xml.write_text(LABELIMG_XML.replace("image007", "image001"))
    ann = read_voc(xml)
    # The old fixed temporary names: a symlink there must not redirect the write.
    for name in (f".image001.xml.tmp{os.getpid()}", f".image001.xml.review{os.getpid()}.tmp"):
        (data / name).symlink_to(outside)
    write_voc(xml, ann, root=tmp_path / "ds")
    assert outside.read_text() == "precious" and read_voc(xml) == ann
    # A target that is itself a symlink is refused, with the reason.
    link = data / "image002.xml"
    link.symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"image002.xml: is a symlink .* not written through it"):
        write_voc(link, ann)
    with pytest.raises(UnsafePathError):
        create_exclusive(link, b"x")
    assert outside.read_text() == "precious"


def test_a_split_folder_leading_out_of_the_data_set_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "ds"
    root.mkdir()
    (root / "test").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="outside"):
        atomic_write_text(root / "test" / "image001.xml", "<annotation/>", root=root)
    assert not list(elsewhere.iterdir())
    atomic_write_text(root / "classes.txt", "one\n", root=root)  # inside: fine
    assert (root / "classes.txt").read_text() == "one\n"


def det(cid, box, score=0.9):
    return SimpleNamespace(class_id=cid, box=BBox(*box), score=score)


def test_a_difficult_face_is_neither_a_hit_nor_a_miss():
    labels = {1: "one", 2: "two"}
    truth = [[(1, BBox(0, 0, 100, 100)), (2, BBox(200, 0, 300, 100), True)]]
    found_on_it = [[det(1, (0, 0, 100, 100)), det(1, (200, 0, 300, 100))]]  # read as the wrong digit
    missed_it = [[det(1, (0, 0, 100, 100))]]
    for found in (found_on_it, missed_it):
        result = summarize(truth, found, labels)
        assert result["mAP50"] == pytest.approx(1.0) and result["sequence_accuracy"] == 1.0
        assert result["faces"] == 1 and result["difficult"] == 1
        assert sum(result["confusions"].values()) == 0
    # Without the mark, the same detections are a confusion and a wrong sequence.
    plain = [[(1, BBox(0, 0, 100, 100)), (2, BBox(200, 0, 300, 100))]]
    assert summarize(plain, found_on_it, labels)["sequence_accuracy"] == 0.0


def test_training_ignores_the_region_of_a_difficult_face():
    spec = ModelSpec()
    image = np.zeros((480, 640, 3), np.uint8)
    sample = to_sample(image, [LabeledBox("one", 40, 40, 200, 200),
                               LabeledBox("two", 320, 40, 480, 200, difficult=True)], spec)
    assert sample[1][:, 0].tolist() == [0, DIFFICULT]
    target = encode_targets([tuple(b) for b in sample[1]], spec)
    heat = target[..., :2]
    assert heat[:, :10, 0].max() == pytest.approx(1.0)  # the normal face: a positive peak
    hard = heat[:, 11:, :]  # the difficult one (model x 80..120 -> cells 10..15): don't care, no peak
    assert hard.max() == pytest.approx(IGNORE) and (hard >= 0.999).sum() == 0
    assert target[:, 11:, 6].max() == 0.0  # no box regression there
    assert ground_truth([sample], spec)[0][1][2] is True
