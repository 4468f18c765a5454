"""dataset_writer.DatasetWriter and capture.py: numbering, splits, atomic exclusive writes, pre-annotation XML,
summary."""

import os
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from cube_detect import dataset_writer
from cube_detect import files as file_io
from cube_detect.capture import CaptureSession, annotation_boxes
from cube_detect.dataset import image_name, load_split, numbers_in, split_for
from cube_detect.dataset_writer import DatasetWriter, SaveSummary
from cube_detect.errors import DatasetError
from cube_detect.images import ENCODINGS
from cube_detect.voc import LabeledBox, read_voc


def frame(width=64, height=48, value=0):
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def det(label, box, class_id=None):
    return SimpleNamespace(label=label, class_id=class_id, score=0.9, box=box)


def touch_png(path, value=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), frame(8, 8, value))


def files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- numbering
def test_image_names_are_padded_to_three_digits_then_grow():
    assert [image_name(n) for n in (1, 42, 999, 1000, 12345)] == [
        "image001.png", "image042.png", "image999.png", "image1000.png", "image12345.png"]
    with pytest.raises(ValueError):
        image_name(0)


def test_numbering_starts_at_one_and_counts_up(tmp_path):
    writer = DatasetWriter(tmp_path / "ds")
    saved = [writer.save(frame(value=i)) for i in range(3)]
    assert [s.number for s in saved] == [1, 2, 3]
    assert [s.image_path.name for s in saved] == ["image001.png", "image002.png", "image003.png"]
    assert all(s.image_path.parent.name == s.split for s in saved)


def test_numbering_continues_after_both_splits_and_across_restarts(tmp_path):
    root = tmp_path / "ds"
    touch_png(root / "train" / "image003.jpg")
    touch_png(root / "test" / "image007.png")
    (root / "train" / "image005.xml").write_text("<annotation/>")  # an orphan XML takes its number
    (root / "train" / "imageX.png").write_text("not numbered")
    (root / "train" / "photo9.png").write_text("not ours")
    assert numbers_in(root) == [3, 5, 7]
    first = DatasetWriter(root).save(frame())
    assert first.number == 8
    again = DatasetWriter(root).save(frame())  # a restart: a new writer on the same folder
    assert again.number == 9


def test_numbering_reads_unpadded_and_long_numbers(tmp_path):
    root = tmp_path / "ds"
    touch_png(root / "train" / "image998.png")
    touch_png(root / "test" / "Image999.PNG")
    writer = DatasetWriter(root)
    assert writer.save(frame()).image_path.name == "image1000.png"
    assert writer.save(frame()).image_path.name == "image1001.png"


def test_numbers_continue_after_files_another_writer_added(tmp_path):
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    assert writer.save(frame()).number == 1
    touch_png(root / "test" / "image020.png")  # another capture node, or a copy by hand
    assert writer.save(frame()).number == 21


# ----------------------------------------------------------------------------- splits
def test_split_is_a_fixed_function_of_the_number():
    first = [split_for(n, 0.1) for n in range(1, 2001)]
    assert first == [split_for(n, 0.1) for n in range(1, 2001)]
    share = first.count("test") / len(first)
    assert 0.07 < share < 0.13, share
    assert {split_for(n, 0.0) for n in range(1, 500)} == {"train"}
    assert {split_for(n, 1.0) for n in range(1, 500)} == {"test"}
    # A larger share only moves numbers from train to test, never back.
    assert all(split_for(n, 0.3) == "test" for n in range(1, 2001) if first[n - 1] == "test")


def test_saved_split_matches_split_for(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", test_share=0.5)
    for i in range(12):
        saved = writer.save(frame(value=i))
        assert saved.split == split_for(saved.number, 0.5)
        assert saved.image_path == tmp_path / "ds" / saved.split / image_name(saved.number)


def test_test_share_must_be_a_fraction(tmp_path):
    with pytest.raises(DatasetError, match="test_share"):
        DatasetWriter(tmp_path / "ds", test_share=10)


# ----------------------------------------------------------------------------- writing
def test_png_is_lossless_and_classes_file_is_written(tmp_path):
    writer = DatasetWriter(tmp_path / "ds")
    image = frame(752, 480, 3)
    saved = writer.save(image)
    assert np.array_equal(cv2.imread(str(saved.image_path), cv2.IMREAD_UNCHANGED), image)
    assert (tmp_path / "ds" / "classes.txt").read_text() == "one\ntwo\n"
    assert saved.xml_path is None and not saved.image_path.with_suffix(".xml").exists()


def test_no_temporary_file_is_left_and_final_name_appears_complete(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path / "ds")
    image = frame()
    expected = cv2.imencode(".png", image)[1].tobytes()
    seen = []
    real_link = os.link

    def checking_link(src, dst):
        # At the moment the final name appears, the file behind it is already complete.
        assert not os.path.exists(dst)
        if str(dst).endswith(".png"):
            assert Path(src).read_bytes() == expected
        else:
            assert read_voc(src).filename == "image001.png"
        seen.append(Path(dst).name)
        real_link(src, dst)

    monkeypatch.setattr(dataset_writer.os, "link", checking_link)
    saved = writer.save(image, [])
    assert seen == ["image001.png", "image001.xml"]
    assert saved.image_path.read_bytes() == expected
    assert files(tmp_path / "ds") == ["classes.txt", "label_map.pbtxt",
                                      f"{saved.split}/image001.png", f"{saved.split}/image001.xml"]


@pytest.mark.parametrize("room_for", [0, 1])  # files that fit: none, or the PNG but not its XML
def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch, room_for):
    writer = DatasetWriter(tmp_path / "ds")
    real_write = file_io.write_all
    calls = []

    def disk_full(handle, data):
        calls.append(len(data))
        if len(calls) > room_for:
            handle.write(data[:10])
            raise OSError(28, "No space left on device")
        real_write(handle, data)

    monkeypatch.setattr(file_io, "write_all", disk_full)
    with pytest.raises(DatasetError, match=r"image001.png: not saved, nothing written \(No space left on device\)"):
        writer.save(frame(), [])
    assert files(tmp_path / "ds") == ["classes.txt", "label_map.pbtxt"]  # no orphan PNG, no temporary file
    # The session turns it into a failed capture, not an exception.
    result = CaptureSession(writer).capture_frame(frame())
    assert not result.ok and "No space left" in result.message
    assert writer.summary.failed == 1 and sum(writer.summary.images.values()) == 0


def test_never_overwrites_a_file_that_appears_during_the_write(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    real_publish = dataset_writer.publish_exclusive
    intruders = []

    def racing_publish(tmp, final):
        # Another writer creates the very name between our check and our link.
        if not intruders and final.suffix == ".png":
            final.write_bytes(b"someone else's image")
            intruders.append(final)
        return real_publish(tmp, final)

    monkeypatch.setattr(dataset_writer, "publish_exclusive", racing_publish)
    saved = writer.save(frame())
    assert intruders and intruders[0].name == "image001.png"
    assert intruders[0].read_bytes() == b"someone else's image"
    assert saved.number == 2 and saved.image_path.name == "image002.png"
    assert not [p for p in root.rglob(".*") if p.is_file()], "temporary files left behind"


def test_existing_xml_is_never_overwritten(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    real_publish = dataset_writer.publish_exclusive

    def racing_publish(tmp, final):
        if final.suffix == ".xml":
            final.write_text("theirs")
        return real_publish(tmp, final)

    monkeypatch.setattr(dataset_writer, "publish_exclusive", racing_publish)
    saved = writer.save(frame(), [LabeledBox("one", 1, 1, 10, 10)])
    assert saved.xml_path is None
    assert saved.image_path.with_suffix(".xml").read_text() == "theirs"


def test_without_hard_links_an_exclusive_reservation_is_used(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(dataset_writer.os, "link", no_links)
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    image = frame()
    saved = writer.save(image)
    assert np.array_equal(cv2.imread(str(saved.image_path)), image)
    taken = root / split_for(2, 0.1) / "image002.png"
    taken.write_bytes(b"x")
    real_publish = dataset_writer.publish_exclusive

    def late_intruder(tmp, final):
        if final.name == "image003.png" and not final.exists():
            final.write_bytes(b"late")
        return real_publish(tmp, final)

    monkeypatch.setattr(dataset_writer, "publish_exclusive", late_intruder)
    assert writer.save(image).number == 4
    assert taken.read_bytes() == b"x"
    assert (root / split_for(3, 0.1) / "image003.png").read_bytes() == b"late"


# ----------------------------------------------------------------------------- pre-annotation
def test_pre_annotation_is_a_labelimg_voc_beside_the_image(tmp_path):
    root = tmp_path / "ds"
    writer = DatasetWriter(root, test_share=0.0)
    detections = [det("one", (10.4, 5.6, 30.2, 40.0)), det("two", (-3.0, 2.0, 70.0, 47.6)),
                  det("two", (50.0, 10.0, 50.2, 20.0)),  # empty once rounded: dropped
                  det("2", (5, 5, 9, 9), class_id=2), det("cat", (1, 1, 4, 4), class_id=9)]
    saved = writer.save(frame(64, 48), annotation_boxes(detections, 64, 48))
    ann = read_voc(saved.xml_path)
    assert (ann.filename, ann.folder, ann.path) == ("image001.png", "train", str(saved.image_path))
    assert (ann.width, ann.height, ann.depth) == (64, 48, 3)
    assert [(b.label, b.xmin, b.ymin, b.xmax, b.ymax) for b in ann.boxes] == [
        ("one", 10, 6, 30, 40), ("two", 0, 2, 64, 48), ("two", 5, 5, 9, 9)]
    assert [b.score for b in ann.boxes] == [0.9, 0.9, 0.9]  # the model's scores, for the review page
    assert [s.annotation.boxes for s in load_split(root / "train")] == [ann.boxes]


def test_no_faces_found_still_writes_an_xml_to_review(tmp_path):
    saved = DatasetWriter(tmp_path / "ds").save(frame(), [])
    assert saved.xml_path is not None and read_voc(saved.xml_path).boxes == []


# ----------------------------------------------------------------------------- session and summary
class FakeDetector:
    def __init__(self, detections=None, error=None):
        self.detections, self.error = detections or [], error

    def detect(self, image):
        if self.error:
            raise self.error
        return self.detections


def message(image, encoding="8UC3"):
    channels = ENCODINGS[encoding].channels
    return SimpleNamespace(height=image.shape[0], width=image.shape[1], encoding=encoding,
                           step=image.shape[1] * channels, data=image.tobytes())


def test_session_saves_a_camera_message_and_reports_the_path(tmp_path):
    session = CaptureSession(DatasetWriter(tmp_path / "ds"), FakeDetector([det("two", (1, 2, 20, 30))]))
    image = frame()
    result = session.capture_message(message(image))
    assert result.ok and result.message == str(result.saved.image_path)
    assert np.array_equal(cv2.imread(result.message), image)
    assert "two" in result.log_line()


def test_session_mono_camera_saves_three_equal_channels(tmp_path):
    gray = frame()[:, :, 0].copy()
    result = CaptureSession(DatasetWriter(tmp_path / "ds")).capture_message(message(gray, "mono8"))
    saved = cv2.imread(result.message, cv2.IMREAD_UNCHANGED)
    assert saved.shape == gray.shape + (3,) and all(np.array_equal(saved[:, :, c], gray) for c in range(3))


def test_session_empty_image_saves_nothing(tmp_path):
    session = CaptureSession(DatasetWriter(tmp_path / "ds"), FakeDetector())
    empty = SimpleNamespace(height=0, width=0, encoding="", step=0, data=b"")
    result = session.capture_message(empty)
    assert not result.ok and "empty" in result.message
    assert files(tmp_path / "ds") == ["classes.txt", "label_map.pbtxt"] and session.summary.failed == 1


def test_session_detector_failure_saves_without_annotation(tmp_path):
    session = CaptureSession(DatasetWriter(tmp_path / "ds"), FakeDetector(error=RuntimeError("boom")))
    result = session.capture_frame(frame())
    assert result.ok and result.saved.xml_path is None and "boom" in result.log_line()


def test_summary_counts_images_per_split_and_faces_per_class(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", test_share=0.5)
    session = CaptureSession(writer, FakeDetector([det("one", (1, 1, 9, 9)), det("two", (20, 1, 29, 9)),
                                                   det("two", (40, 1, 49, 9))]))
    splits = [session.capture_frame(frame(value=i)).saved.split for i in range(4)]
    session.detector = None
    splits.append(session.capture_frame(frame()).saved.split)
    session.fail("nothing saved: camera down")
    summary = writer.summary
    assert summary.images == {"train": splits.count("train"), "test": splits.count("test")}
    assert summary.faces == {"one": 4, "two": 8} and summary.annotated == 4
    line = summary.line()
    assert line == (f"saved 5 images (train {splits.count('train')}, test {splits.count('test')}); "
                    "pre-annotated 12 faces (one 4, two 8) in 4 XML files; 1 capture failed")
    assert writer.count_on_disk() == {"train": splits.count("train"), "test": splits.count("test")}
    assert SaveSummary().line() == ("saved 0 images (train 0, test 0); "
                                    "pre-annotated 0 faces (one 0, two 0) in 0 XML files")


def test_summary_line_counts_difficult_faces(tmp_path):
    """Faces marked difficult (synth: most of the digit out of frame) stay in their class and
    are counted once more, so the line says how many of the faces evaluation and training skip."""
    writer = DatasetWriter(tmp_path / "ds", test_share=0.0)
    writer.save(frame(), [LabeledBox("one", 1, 1, 9, 9), LabeledBox("two", 20, 1, 29, 9, difficult=True)])
    writer.save(frame(value=1), [LabeledBox("two", 1, 1, 9, 9, difficult=True)])
    assert writer.summary.line("labelled") == ("saved 2 images (train 2, test 0); labelled 3 faces "
                                               "(one 1, two 2; 2 of them difficult) in 2 XML files")


def test_saved_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        saved = DatasetWriter(tmp_path / "ds").save(frame(), [])
    finally:
        os.umask(old)
    assert oct(saved.image_path.stat().st_mode & 0o777) == oct(0o644)
    assert oct(saved.xml_path.stat().st_mode & 0o777) == oct(0o644)
