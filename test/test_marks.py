"""bench/marks.py: the robustness scenes re-rendered with the unlabelled faces' marks left out change
only those marks, and the run reads both on the shipped model."""

import json

import numpy as np
import pytest

from bench import marks  # the repository root is on pytest.ini's pythonpath
from cube_detect.evaluate import ROBUSTNESS_SEED
from cube_detect.synth import render_indexed


def _scenes(family, count=60):
    for i in range(count):
        yield i, marks.render(i, family)


def test_leaving_marks_out_changes_only_the_marks():
    checked = {"marked": 0, "unmarked": 0}
    for i, (image, boxes, seen) in _scenes("handwriting"):
        plain, plain_boxes = render_indexed(ROBUSTNESS_SEED, i, family="handwriting")
        assert np.array_equal(image, plain) and boxes == plain_boxes  # recording alone changes nothing
        left_out, left_boxes, seen_again = marks.render(i, "handwriting", tuple(marks.KINDS))
        assert left_boxes == boxes and seen_again == seen  # the same scene, the same faces
        if set(seen) - {"blank"}:
            changed = np.any(left_out != image, axis=-1) if image.ndim == 3 else left_out != image
            assert 0 < changed.mean() < 0.05, i  # the marks' ink, nothing else
            checked["marked"] += 1
        else:
            assert np.array_equal(left_out, image), i
            checked["unmarked"] += 1
    assert checked["marked"] >= 2 and checked["unmarked"] >= 10  # both cases met in these scenes


def test_one_kind_left_out_keeps_the_others():
    for i, (image, _, seen) in _scenes("handwriting"):
        kinds = set(seen) - {"blank"}
        if len(kinds) == 1:
            (kind,) = kinds
            other = next(k for k in marks.KINDS if k != kind)
            assert np.array_equal(marks.render(i, "handwriting", (other,))[0], image)
            assert not np.array_equal(marks.render(i, "handwriting", (kind,))[0], image)
            return
    pytest.fail("no scene with one kind of mark in the first 60")


def test_an_unknown_kind_is_named():
    with pytest.raises(ValueError, match="unknown kind of mark.*'ink'"):
        marks.render(0, "handwriting", ("ink",))


def test_the_run_reads_both_on_the_model(tmp_path):
    out = tmp_path / "marks.json"
    assert marks.main(["--count", "40", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "models/cube_detect.tflite" and len(result["model_sha256"]) == 64
    assert result["command"] == f"python -m bench.marks --count 40 --json {out}"
    assert set(result["readings"]) == {"as rendered", "no marks", "no text", "no digit", "no drawn"}
    assert sum(result["marks"].values()) > 0
    rendered, bare = result["readings"]["as rendered"], result["readings"]["no marks"]
    assert 0 <= bare["unlabelled_read"] <= rendered["unlabelled_read"]
    assert 50 < rendered["exact"] <= 100 and 50 < bare["exact"] <= 100
