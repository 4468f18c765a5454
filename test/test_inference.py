"""Inference boundary: pre-processing, decoding, sorting, model loading errors (no TensorFlow)."""

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from cube_detect.boxes import BBox, sort_left_to_right
from cube_detect.errors import ImageError, ModelError
from cube_detect.inference import (
    DecodeSettings,
    Detection,
    decode,
    decode_outputs,
    letterbox,
    load_detector,
    nms,
    to_gray,
)
from cube_detect.modelspec import ModelSpec, sidecar_path
from cube_detect.reader import reader_path


def test_to_gray_accepts_gray_bgr_bgra_and_rejects_empty():
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in BGR
    assert to_gray(bgr).shape == (4, 5)
    assert to_gray(bgr)[0, 0] == 76  # ITU-R 601 luma of red: BGR order was honoured
    assert to_gray(np.dstack([bgr, np.full((4, 5), 255, np.uint8)]))[0, 0] == 76
    assert to_gray(np.full((4, 5, 1), 9, np.uint8))[0, 0] == 9
    with pytest.raises(ImageError):
        to_gray(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ImageError):
        to_gray(np.zeros((4, 5, 3), np.float32))


def test_letterbox_keeps_aspect_and_pads_bottom_right():
    wide = np.full((480, 752), 200, np.uint8)
    boxed, scale = letterbox(wide, 160, 120, pad_value=0)
    assert boxed.shape == (120, 160)
    assert scale == pytest.approx(160 / 752)
    rows = round(480 * scale)
    assert (boxed[:rows] == 200).all() and (boxed[rows:] == 0).all()
    boxed, scale = letterbox(np.full((480, 640), 7, np.uint8), 160, 120)
    assert scale == 0.25 and (boxed == 7).all()


def test_letterbox_at_an_integer_ratio_averages_whole_blocks_and_leaves_other_ratios_to_opencv():
    import cv2

    frame = np.random.default_rng(3).integers(0, 256, (480, 640), dtype=np.uint8)
    # 640x480 into 216x160: scale 1/3, 213x160 pixels, each the mean of a 3x3 block of the frame
    # less its last column (OpenCV's fast block-average path, rounded as OpenCV rounds).
    boxed, scale = letterbox(frame, 216, 160)
    assert scale == pytest.approx(1 / 3) and boxed.shape == (160, 216)
    blocks = frame[:, :639].reshape(160, 3, 213, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(boxed[:, :213].astype(np.float64) - blocks).max() <= 0.5 + 1e-9
    assert (boxed[:, 213:] == 0).all()
    colour = np.dstack([frame, frame[::-1], frame[:, ::-1]])
    assert (letterbox(colour, 216, 160)[0][..., 0] == boxed).all()
    # 224x168 (scale 0.35) and 4x integer ratios: OpenCV's INTER_AREA on the whole frame, as before.
    assert (letterbox(frame, 224, 168)[0] == cv2.resize(frame, (224, 168), interpolation=cv2.INTER_AREA)).all()
    assert (letterbox(frame, 160, 120)[0] == cv2.resize(frame, (160, 120), interpolation=cv2.INTER_AREA)).all()
    # 638x482 into 216x160: 212x160 at scale 1/3.0125, not 1/3: the whole frame, OpenCV's general path.
    odd = np.random.default_rng(4).integers(0, 256, (482, 638), dtype=np.uint8)
    boxed, scale = letterbox(odd, 216, 160)
    assert scale == pytest.approx(160 / 482)
    assert (boxed[:, :212] == cv2.resize(odd, (212, 160), interpolation=cv2.INTER_AREA)).all()


def _maps(peaks, rows=15, cols=20, classes=2):
    heat = np.zeros((rows, cols, classes), np.float32)
    boxes = np.zeros((rows, cols, 4), np.float32)
    for r, c, k, score, ltrb in peaks:
        heat[r, c, k] = score
        boxes[r, c] = ltrb
    return heat, boxes


def test_decode_outputs_finds_peaks_boxes_and_applies_threshold():
    heat, boxes = _maps([(5, 4, 1, 0.9, (2, 2, 2, 2)), (7, 15, 0, 0.7, (1, 2, 3, 4)), (1, 1, 0, 0.3, (1, 1, 1, 1))])
    found = decode_outputs(heat, boxes, stride=8, threshold=0.5, max_detections=4)
    assert [(c, round(s, 2)) for c, s, _ in found] == [(1, 0.9), (0, 0.7)]
    # Cell (5, 4): centre (36, 44); 2 cells = 16 px each way.
    assert found[0][2] == pytest.approx((20, 28, 52, 60))
    assert found[1][2] == pytest.approx((124 - 8, 60 - 16, 124 + 24, 60 + 32))
    assert decode_outputs(heat, boxes, 8, 0.95, 4) == []


def test_decode_outputs_suppresses_overlaps_across_classes_and_caps_count():
    # Two classes firing on the same face: one detection survives (one digit per face).
    heat, boxes = _maps([(5, 5, 0, 0.8, (2, 2, 2, 2)), (5, 6, 1, 0.6, (2, 2, 2, 2))])
    assert [c for c, _, _ in decode_outputs(heat, boxes, 8, 0.5, 4)] == [0]
    many = [(2 + 3 * (i // 5), 2 + 4 * (i % 5), 0, 0.9 - i * 0.01, (1, 1, 1, 1)) for i in range(10)]
    heat, boxes = _maps(many)
    assert len(decode_outputs(heat, boxes, 8, 0.5, 4)) == 4


def test_decode_does_what_its_settings_say():
    spec = ModelSpec()  # threshold 0.5
    # Two boxes of 48 px, B 8 px right of and above A: IoU 0.53, one face at the default NMS IoU.
    heat, boxes = _maps([(5, 5, 0, 0.8, (3, 3, 3, 3)), (4, 6, 1, 0.6, (3, 3, 3, 3))])
    assert [d.class_id for d in decode(heat, boxes, spec)] == [1]  # threshold None: the model's
    assert [d.class_id for d in decode(heat, boxes, spec, DecodeSettings(nms_iou=0.7))] == [1, 2]
    assert [d.class_id for d in decode(heat, boxes, spec, DecodeSettings(nms_iou=0.7, sort_axis="y"))] == [2, 1]
    assert [d.class_id for d in decode(heat, boxes, spec, DecodeSettings(nms_iou=0.7, max_cubes=1))] == [1]
    assert [d.class_id for d in decode(heat, boxes, spec, DecodeSettings(threshold=0.7, nms_iou=0.7))] == [1]


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    assert sorted(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)) == [0, 2]


def test_sort_left_to_right_and_top_to_bottom():
    dets = [Detection("two", 2, 0.9, BBox(300, 0, 400, 100)), Detection("one", 1, 0.8, BBox(0, 200, 100, 300)),
            Detection("two", 2, 0.7, BBox(150, 400, 250, 470))]
    assert [d.box[0] for d in sort_left_to_right(dets)] == [0, 150, 300]
    assert [d.box[1] for d in sort_left_to_right(dets, "y")] == [0, 200, 400]
    with pytest.raises(ValueError):
        sort_left_to_right(dets, "z")


def test_detection_to_dict_is_the_documented_json():
    d = Detection("one", 1, 0.912345, (1.04, 2.0, 3.0, 4.0)).to_dict()
    assert d == {"label": "one", "id": 1, "score": 0.9123, "box": [1.0, 2.0, 3.0, 4.0]}


def test_missing_model_corrupt_model_and_bad_sidecar_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="nope.tflite"):
        load_detector(tmp_path / "nope.tflite")
    model = tmp_path / "bad.tflite"
    model.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="bad.json"):  # no sidecar yet
        load_detector(model)
    ModelSpec().save(sidecar_path(model))
    with pytest.raises(ModelError, match="bad.tflite"):
        load_detector(model, backend="cpu")
    sidecar_path(model).write_text("{not json")
    with pytest.raises(ModelError, match="bad.json"):
        load_detector(model)


def test_label_file_that_does_not_match_the_model_is_refused(shipped_model, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("1 one\n2 two\n3 three\n")
    with pytest.raises(ModelError, match="labels.txt"):
        load_detector(shipped_model, labels_path=labels)


def test_sidecar_with_wrong_label_count_is_refused(shipped_model, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(shipped_model.read_bytes())
    spec = ModelSpec.load(sidecar_path(shipped_model))
    spec.labels = {1: "one", 2: "two", 3: "three"}
    spec.reader = None  # (its classes would not match either: test_reader.py)
    spec.save(sidecar_path(model))
    with pytest.raises(ModelError, match="3 labels"):
        load_detector(model)


def test_edgetpu_missing_falls_back_to_cpu_with_one_reason(shipped_model):
    detector = load_detector(shipped_model)
    assert detector.backend == "cpu"
    assert "Edge TPU skipped" in detector.backend_reason
    with pytest.raises(ModelError, match="Edge TPU"):
        load_detector(shipped_model, backend="edgetpu")


def test_importing_inference_does_not_import_tensorflow_or_rospy():
    import subprocess

    code = ("import sys, cube_detect.inference, cube_detect.images, cube_detect.protocol, cube_detect.arm, "
            "cube_detect.capture, cube_detect.detect, cube_detect.evaluate, cube_detect.dataset, "
            "cube_detect.dataset_writer, cube_detect.voc, cube_detect.stats; "
            "bad = [m for m in ('tensorflow', 'rospy', 'keras') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_decode_maps_back_to_image_pixels_clips_and_sorts():
    spec = ModelSpec()  # 160x120, stride 8, labels 1 one / 2 two
    heat, boxes = _maps([(5, 15, 1, 0.9, (2, 2, 2, 2)), (5, 4, 0, 0.8, (2, 2, 6, 2)), (14, 19, 0, 0.7, (1, 1, 3, 3))])
    found = decode(heat, boxes, spec, DecodeSettings(threshold=0.5, max_cubes=4), scale=0.25, image_size=(480, 640))
    assert [(d.label, d.class_id) for d in found] == [("one", 1), ("two", 2), ("one", 1)]  # left to right
    assert found[0].box == pytest.approx((80, 112, 336, 240))  # cell (5, 4): (36 -/+ 16|48, 44 -/+ 16) / 0.25
    assert found[2].box[2:] == pytest.approx((640, 480))  # past the image's corner: clipped
    assert decode(heat, boxes, spec, DecodeSettings(threshold=0.95)) == []


def test_a_sidecar_beside_another_model_is_refused(shipped_model, tmp_path):
    # What a kill between the export's renames would leave: the new sidecar beside the old model.
    model = tmp_path / "m.tflite"
    model.write_bytes(shipped_model.read_bytes())
    spec = ModelSpec.load(sidecar_path(shipped_model))
    spec.model_sha256 = "0" * 64
    spec.save(sidecar_path(model))
    shipped_reader = reader_path(shipped_model)
    model.with_name(shipped_reader.name).write_bytes(shipped_reader.read_bytes())  # the sidecar names it
    with pytest.raises(ModelError, match="m.json: describes another model than m.tflite"):
        load_detector(model)
    spec.model_sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
    spec.save(sidecar_path(model))
    assert load_detector(model).backend == "cpu"


def test_an_export_publishes_its_staged_files_together_the_model_last(tmp_path, monkeypatch):
    """publish_staged: every target checked before anything is renamed (a symlink or a folder where
    a file goes stops it all), old Edge TPU twins removed, then the files, the sidecar and the model
    last."""
    import os

    from cube_detect import export, files
    from cube_detect.files import UnsafePathError

    out, stage = tmp_path / "m", tmp_path / ".m.stage.abc.tmp"
    stage.mkdir()
    names = ["m.tflite", "m.json", "m.keras", "m.labels.txt", "m.label_map.pbtxt"]
    for name in names:
        (stage / name).write_bytes(name.encode())
    (tmp_path / "m_edgetpu.tflite").write_bytes(b"compiled from the model being replaced")
    (tmp_path / "m.labels.txt").mkdir()
    with pytest.raises(UnsafePathError, match="m.labels.txt: is a folder"):
        export.publish_staged(stage, out)
    assert sorted(p.name for p in stage.iterdir()) == sorted(names)
    assert (tmp_path / "m_edgetpu.tflite").is_file()
    (tmp_path / "m.labels.txt").rmdir()
    renamed = []
    rename = os.rename
    monkeypatch.setattr(files.os, "replace", lambda a, b: (renamed.append(Path(b).name), rename(a, b)))
    published = export.publish_staged(stage, out)
    assert renamed[-2:] == ["m.json", "m.tflite"] and sorted(renamed) == sorted(names)
    assert [p.name for p in published] == renamed and not list(stage.iterdir())
    assert all((tmp_path / name).read_bytes() == name.encode() for name in names)
    assert not (tmp_path / "m_edgetpu.tflite").exists()


def test_export_removes_the_temporary_files_of_an_interrupted_export(tmp_path):
    from cube_detect.export import remove_stale_temporaries

    out = tmp_path / "mymodel"
    stale = [tmp_path / ".mymodel.tflite.tmp123.tflite", tmp_path / ".mymodel.keras.tmp9.keras"]
    for path in stale + [tmp_path / "mymodel.tflite", tmp_path / ".other.tflite.tmp1.tflite"]:
        path.write_bytes(b"x")
    stage = tmp_path / ".mymodel.stage.k2j4.tmp"  # the staging folder of an export killed before it published
    (stage / "sub").mkdir(parents=True)
    (stage / "mymodel.tflite").write_bytes(b"half")
    (stage / "sub" / "x").write_bytes(b"x")
    assert remove_stale_temporaries(out) == sorted(stale + [stage])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tflite.tmp1.tflite", "mymodel.tflite"]


@pytest.mark.parametrize("failure", ["import", "delegate", "invoke"])
def test_an_edgetpu_that_fails_anywhere_falls_back_to_cpu(shipped_model, tmp_path, monkeypatch, failure):
    """pycoral whose import fails (libedgetpu missing), a delegate that raises on load, an
    Edge TPU interpreter that raises at its first invoke: each is one reason, then the CPU."""
    import cube_detect.inference as inference

    model = tmp_path / "m.tflite"
    model.write_bytes(shipped_model.read_bytes())
    sidecar_path(model).write_bytes(sidecar_path(shipped_model).read_bytes())
    shipped_reader = reader_path(shipped_model)
    model.with_name(shipped_reader.name).write_bytes(shipped_reader.read_bytes())  # the sidecar names it
    inference.edgetpu_twin(model).write_bytes(shipped_model.read_bytes())  # a stand-in compiled twin

    def pycoral(_path):
        if failure == "import":
            raise ImportError("libedgetpu.so.1: cannot open shared object file")
        raise RuntimeError("pycoral sees no Edge TPU")

    real_make = inference.make_interpreter

    def make(path, num_threads=1, delegate=None):
        if delegate and failure != "invoke":
            raise RuntimeError(f"Failed to load delegate from {delegate}")
        interpreter = real_make(path, num_threads)
        if delegate:
            def broken_invoke():
                raise RuntimeError("Edge TPU: USB transfer error")
            interpreter.invoke = broken_invoke
        return interpreter

    monkeypatch.setattr(inference, "_pycoral_interpreter", pycoral)
    monkeypatch.setattr(inference, "make_interpreter", make)
    detector = load_detector(model)
    assert detector.backend == "cpu"
    expected = {"import": "libedgetpu.so.1", "delegate": "Failed to load delegate", "invoke": "USB transfer error"}
    assert expected[failure] in detector.backend_reason
    with pytest.raises(ModelError, match="no Edge TPU backend works"):
        load_detector(model, backend="edgetpu")


def test_a_model_that_fails_at_its_first_cpu_inference_is_named(shipped_model, monkeypatch):
    import cube_detect.inference as inference

    real_make = inference.make_interpreter

    def make(path, num_threads=1, delegate=None):
        interpreter = real_make(path, num_threads, delegate)

        def broken_invoke():
            raise RuntimeError("Node number 3 (CONV_2D) failed to invoke")
        interpreter.invoke = broken_invoke
        return interpreter

    monkeypatch.setattr(inference, "make_interpreter", make)
    with pytest.raises(ModelError, match=r"cube_detect.tflite: fails at its first inference on the CPU \(Node"):
        load_detector(shipped_model, backend="cpu")
