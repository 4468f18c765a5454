"""bench/hands.py: the held-out scenes rendered while noting each labelled face's glyph are the
robustness suite's scenes, every face is named after a held-out hand of its own digit, the names
point at the right MNIST samples, and a run on the shipped model tallies every face once."""

import json
import os

import cv2
import numpy as np
import pytest

from bench import hands  # the repository root is on pytest.ini's pythonpath
from cube_detect.evaluate import ROBUSTNESS_SEED, robustness
from cube_detect.inference import DecodeSettings, load_detector
from cube_detect.synth import HELDOUT_FAMILY, handwriting, render_indexed

SCENES = 40
DIGIT = {"one": "1", "two": "2"}


@pytest.fixture(scope="module")
def scenes():
    return [hands.render(i) for i in range(SCENES)]


def test_recording_changes_nothing_and_names_a_held_out_hand_per_face(scenes):
    held_out_fonts = set(handwriting.HELDOUT_FONTS)
    kinds = set()
    for i, (image, boxes, names) in enumerate(scenes):
        plain, plain_boxes = render_indexed(ROBUSTNESS_SEED, i, family=HELDOUT_FAMILY)
        assert np.array_equal(image, plain) and boxes == plain_boxes, i
        assert len(names) == len(boxes) > 0, i
        for box, name in zip(boxes, names):
            kind, rest = name.split(" ", 1)
            if kind == "MNIST":
                digit, index = rest.split(" #")
                assert digit == DIGIT[box.label] and handwriting.heldout_index(int(index)), (i, name)
            else:
                assert kind == "font", (i, name)
                file, digit = rest.rsplit(" ", 1)
                assert file in held_out_fonts and digit == DIGIT[box.label], (i, name)
            kinds.add(kind)
    assert kinds == {"MNIST", "font"}


def test_mnist_names_are_the_packages_indices():
    names = hands.hand_names()
    for file in handwriting.FONTS:
        if os.path.basename(file) in handwriting.HELDOUT_FONTS:
            for digit in "12":
                assert names[id(handwriting.font_glyph(file, digit))] == f"font {os.path.basename(file)} {digit}"
    for label, digit in (("one", 1), ("two", 2)):
        samples = handwriting.mnist_digit(digit)
        for glyph in handwriting.glyphs(label, "heldout")[0][:25]:
            index = int(names[id(glyph)].split("#")[1])
            assert np.array_equal(glyph, handwriting._crop(samples[index]))


def test_a_known_face():
    """Held-out scene 899: one face, MNIST's 2.json sample 440, the one the README shows read as a 1."""
    _, boxes, names = hands.render(899)
    assert [b.label for b in boxes] == ["two"] and names == ["MNIST 2 #440"]


def test_outcome():
    assert hands.outcome(1, {}, 0.4) == "not found"
    assert hands.outcome(1, {1: 0.39}, 0.4) == "not found"
    assert hands.outcome(1, {1: 0.5, 2: 0.3}, 0.4) == "right"
    assert hands.outcome(2, {1: 0.5, 2: 0.45}, 0.4) == "other class"
    assert hands.outcome(2, {1: 0.3, 2: 0.45}, 0.4) == "right"


@pytest.mark.parametrize("argv, line", [
    (["--model", "nowhere.tflite"], "--model nowhere.tflite: model file not found"),
    (["--count", "0"], "--count 0: at least one scene"),
    (["--threshold", "1.5"], "--threshold 1.5: a score between 0 and 1"),
    (["--sheet", "faces.gif"], "--sheet faces.gif: a .png or .jpg file"),
])
def test_bad_arguments_are_one_line_naming_them(argv, line, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        hands.main([*argv, "--json", str(tmp_path / "h.json")])
    assert exit_.value.code == 2 and line in capsys.readouterr().err
    assert not (tmp_path / "h.json").exists()


def test_run_on_the_shipped_model(tmp_path, scenes):
    """At the model's threshold the faces are robustness's; at 0.95 most faces are not found (any
    model), so the sheet holds its 64 tiles."""
    out = tmp_path / "hands.json"
    assert hands.main(["--count", str(SCENES), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    detector = load_detector(hands.ROOT / result["model"], backend="cpu", decoding=DecodeSettings(max_cubes=10))
    table = robustness(detector, SCENES, [HELDOUT_FAMILY])[HELDOUT_FAMILY]
    assert result["faces"] == table["faces"] and result["threshold"] == detector.threshold
    sheet = tmp_path / "misread.png"
    assert hands.main(["--count", str(SCENES), "--threshold", "0.95", "--json", str(out), "--sheet", str(sheet)]) == 0
    result = json.loads(out.read_text())
    assert result["command"] == f"python -m bench.hands --count {SCENES} --threshold 0.95 --json {out} --sheet {sheet}"
    assert result["model"] == "models/cube_detect.tflite" and len(result["model_sha256"]) == 64
    assert (result["seed"], result["count"], result["threshold"]) == (ROBUSTNESS_SEED, SCENES, 0.95)
    faces = sum(not x.difficult for _, b, _ in scenes for x in b)  # a face whose digit is out of frame: no hand's
    assert faces < sum(len(b) for _, b, _ in scenes)  # these scenes hold one (its reading is not counted)
    assert result["faces"] == faces == sum(r["faces"] for r in result["hands"].values())
    assert sum(r["faces"] for r in result["by_kind"].values()) == faces
    for r in result["hands"].values():
        assert r["faces"] == sum(r[k] for k in hands.OUTCOMES)
    misread = sum(r["faces"] - r["right"] for r in result["hands"].values())
    assert result["misread_faces"] == misread > 64
    errors = [r["faces"] - r["right"] for r in result["hands"].values()]
    assert errors == sorted(errors, reverse=True)  # most misread hands first
    assert cv2.imread(str(sheet)).shape == (160 * 8, 160 * 8, 3)  # the first 64, 8 a row
    assert not os.path.isabs(result["model"])
