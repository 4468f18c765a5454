"""The face reader on the robot side: its crop, its rule, its sidecar field, its loading, and the
detector reading through it on the shipped model (real TFLite, our synthetic scenes). Robot side:
`make py38` runs it (no TensorFlow, no handwriting data); the held-out hands: test_handwriting.py."""

import hashlib
import json
import shutil
import zipfile

import cv2
import numpy as np
import pytest

from cube_detect.errors import ModelError
from cube_detect.inference import DecodeSettings, load_detector, to_gray
from cube_detect.metrics import ground_truth_of, sequence_accuracy
from cube_detect.modelspec import ModelSpec, sidecar_path
from cube_detect.reader import MIN_PROPOSAL, crop, proposal_threshold, reader_path, rescore
from cube_detect.synth import render_indexed


def copy_model(shipped_model, folder, name="m"):
    """The shipped model, its sidecar and its reader under another name (the sidecar renamed to match)."""
    model = folder / f"{name}.tflite"
    shutil.copyfile(shipped_model, model)
    spec = ModelSpec.load(sidecar_path(shipped_model))
    shutil.copyfile(reader_path(shipped_model), reader_path(model))
    spec.reader = type(spec.reader)(reader_path(model).name, spec.reader.sha256, spec.reader.side,
                                    spec.reader.context, spec.reader.classes, spec.reader.rule, spec.reader.extra)
    spec.save(sidecar_path(model))
    return model


def test_crop_cuts_the_square_around_the_box_and_replicates_the_frame_edge():
    gray = np.arange(480 * 640, dtype=np.uint32).reshape(480, 640).astype(np.uint8)
    gray = cv2.GaussianBlur(gray, (0, 0), 3)
    # A 80x40 box centred on (200, 150): the square of 1.25 x 80 = 100 pixels, shrunk to 48.
    inside = crop(gray, (160, 130, 240, 170))
    expected = cv2.resize(gray[100:200, 150:250], (48, 48), interpolation=cv2.INTER_AREA)
    assert inside.shape == (48, 48) and inside.dtype == np.uint8
    assert np.array_equal(inside, expected)
    # Half out of the top-left corner: the missing rows and columns repeat the frame's edge.
    corner = crop(gray, (-20, -20, 20, 20), side=50)  # the 50-pixel square from (-25, -25)
    assert np.array_equal(corner[:25, 25:], np.repeat(gray[:1, :25], 25, axis=0))
    assert np.array_equal(corner[25:, 25:], gray[:25, :25])
    # A small face is enlarged (linear), never cut outside the frame's pixels.
    assert crop(gray, (630, 470, 640, 480)).shape == (48, 48)


def test_rescore_takes_the_likelier_digit_and_the_geometric_mean_with_not_none():
    assert rescore(0.64, np.array([0.0, 0.1, 0.9])) == (1, pytest.approx(0.8))
    digit, score = rescore(0.64, np.array([0.75, 0.2, 0.05]))
    assert digit == 0 and score == pytest.approx(0.4)  # sqrt(0.64 x 0.25)
    assert rescore(0.9, np.array([1.0, 0.0, 0.0]))[1] == 0.0
    # A face reaches t after the reader only from a detector score of t squared.
    assert proposal_threshold(0.5) == 0.25 and proposal_threshold(0.05) == MIN_PROPOSAL


@pytest.mark.parametrize("field, value, message", [
    ("file", "../x.tflite", "reader.file"),
    ("file", "x.bin", "reader.file"),
    ("sha256", "abc", "reader.sha256"),
    ("crop", 48, "reader.crop"),
    ("crop", {"side": 0, "context": 1.25}, "reader.crop.side"),
    ("crop", {"side": 48, "context": 9}, "reader.crop.context"),
    ("classes", ["one", "two"], "reader.classes"),
    ("rule", "max", "reader.rule"),
])
def test_a_bad_reader_field_is_one_line_naming_the_sidecar_and_the_field(shipped_model, tmp_path, field, value,
                                                                         message):
    model = copy_model(shipped_model, tmp_path)
    doc = json.loads(sidecar_path(model).read_text())
    doc["reader"][field] = value
    sidecar_path(model).write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=f"m.json: sidecar field '{message}'") as err:
        load_detector(model)
    assert "\n" not in str(err.value)
    doc["reader"] = "yes"
    sidecar_path(model).write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="m.json: sidecar field 'reader' is 'yes'"):
        load_detector(model)


def test_a_missing_or_other_reader_file_is_refused_naming_it(shipped_model, tmp_path):
    model = copy_model(shipped_model, tmp_path)
    reader = reader_path(model)
    reader.write_bytes(reader.read_bytes()[:-8] + b"12345678")
    with pytest.raises(ModelError, match="m.json: describes another face reader than m_reader.tflite"):
        load_detector(model)
    reader.unlink()
    with pytest.raises(ModelError, match="m_reader.tflite: face reader not found"):
        load_detector(model)
    # A reader that is not a TFLite model (its sha256 matching): one line naming it.
    reader.write_bytes(b"not a flatbuffer" * 8)
    spec = ModelSpec.load(sidecar_path(model))
    spec.reader = type(spec.reader)(reader.name, hashlib.sha256(reader.read_bytes()).hexdigest())
    spec.save(sidecar_path(model))
    with pytest.raises(ModelError, match="m_reader.tflite: face reader is not a valid TFLite model"):
        load_detector(model)


def test_the_shipped_model_reads_through_its_reader_on_the_cpu(shipped_model):
    detector = load_detector(shipped_model)
    assert detector.reader is not None and detector.reader.backend == "cpu"
    assert "face reader on the cpu (cube_detect_reader.tflite)" in detector.backend_reason
    spec = ModelSpec.load(sidecar_path(shipped_model))
    assert spec.reader.file == "cube_detect_reader.tflite"
    assert hashlib.sha256(reader_path(shipped_model).read_bytes()).hexdigest() == spec.reader.sha256
    # Its float network, what a fine-tune tunes, is the one the sidecar names (the robot never reads it).
    float_reader = reader_path(shipped_model).with_suffix(".keras")
    assert hashlib.sha256(float_reader.read_bytes()).hexdigest() == dict(spec.reader.extra)["float_sha256"]
    assert b"optimizer" not in zipfile.ZipFile(float_reader).read("model.weights.h5")  # the weights alone


def test_detect_is_the_detectors_proposals_at_the_squared_threshold_read_again(shipped_model):
    """The wiring, on real TFLite: what ``detect`` returns is exactly the detector's own proposals at
    t**2 (twice ``max_cubes`` of them), each read from the full-resolution frame, kept when its new
    score reaches t, the best ``max_cubes`` of those in the arm's order."""
    with_reader = load_detector(shipped_model, decoding=DecodeSettings(max_cubes=2))
    alone = load_detector(shipped_model, reader=False, decoding=DecodeSettings(max_cubes=4))
    assert alone.reader is None
    t = with_reader.threshold
    checked = dropped = capped = 0
    for i in range(40):
        image, _ = render_indexed(7, i)  # our generator's digits: the robot side has no handwriting data
        gray = to_gray(image)
        kept = []
        for p in alone.detect(image, threshold=t * t):
            digit, score = rescore(p.score, with_reader.reader.read(gray, p.box))
            label = with_reader.spec.labels[with_reader.spec.class_ids[digit]]
            dropped += score < t
            if score >= t:
                kept.append((label, round(score, 5), tuple(round(v, 2) for v in p.box)))
        capped += len(kept) > 2
        expected = sorted(sorted(kept, key=lambda k: -k[1])[:2], key=lambda k: (k[2][0] + k[2][2]) / 2)
        found = [(d.label, round(d.score, 5), tuple(round(v, 2) for v in d.box)) for d in with_reader.detect(image)]
        assert found == expected, i
        checked += len(found)
        assert set(with_reader.last_timing_ms) >= {"preprocess", "inference", "decode", "reader", "total"}
    # It did read, drop proposals, and keep the best two where more passed.
    assert checked > 40 and dropped > 0 and capped > 0, (checked, dropped, capped)


def test_reader_crops_leave_a_difficult_face_out(shipped_model):
    """A face whose digit is out of frame (VOC difficult) teaches the reader nothing: no jittered
    crops of it, and a proposal on it is neither its digit nor "no face"."""
    from cube_detect.reader_train import CROP_PROPOSAL, JITTERED, MATCH_IOU, NONE_IOU, scene_crops

    detector = load_detector(shipped_model, backend="cpu", reader=False)
    order = {detector.spec.labels[c]: k + 1 for k, c in enumerate(detector.spec.class_ids)}
    image, boxes = render_indexed(31, 16, family="cut")  # its rightmost face shows a sliver of its 1
    faces = [(order[b.label], tuple(b.bbox), b.difficult) for b in boxes]
    hard = [f for f in faces if f[2]]
    assert len(hard) == 1 and len(faces) == 3
    proposals = detector.detect(image, threshold=CROP_PROPOSAL)
    on_hard = [p for p in proposals if p.box.iou(hard[0][1]) >= MATCH_IOU]  # counted, they would be its digit
    near = [p for p in proposals if NONE_IOU <= p.box.iou(hard[0][1]) < MATCH_IOU]  # left out either way
    assert on_hard and not any(p.box.iou(f[1]) >= NONE_IOU for p in on_hard + near for f in faces if not f[2])
    _, counted = scene_crops(detector, image, [f[:2] for f in faces], np.random.default_rng(0))
    _, left = scene_crops(detector, image, faces, np.random.default_rng(0))
    # Exactly its jittered crops and the proposals on it go; every other crop stays, labelled the same.
    assert len(counted) - len(left) == JITTERED + len(on_hard), (counted, left)
    assert left.count(0) == counted.count(0)
    assert sum(1 for c in left if c) == sum(1 for c in counted if c) - JITTERED - len(on_hard)


def test_the_shipped_model_with_its_reader_reads_the_generators_scenes(shipped_model):
    detector = load_detector(shipped_model, decoding=DecodeSettings(max_cubes=10))
    ids = {v: k for k, v in detector.spec.labels.items()}
    for family, floor in (("table", 0.9), ("cut", 0.85)):
        truth, found = [], []
        for i in range(40):
            image, boxes = render_indexed(424_242, i, family=family)
            truth.append(ground_truth_of(boxes, ids))
            found.append(detector.detect(image))
        assert sequence_accuracy(truth, found, detector.threshold) >= floor, family
