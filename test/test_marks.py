"""bench/marks.py: the robustness scenes re-rendered with the unlabelled faces' marks left out change
only those marks, each kind is named after what inked it, and the run reads the scenes as
`robustness` does, on the shipped model."""

import collections
import json

import numpy as np
import pytest

from bench import marks  # the repository root is on pytest.ini's pythonpath
from cube_detect.evaluate import ROBUSTNESS_SEED, robustness
from cube_detect.inference import DecodeSettings, load_detector
from cube_detect.synth import handwriting, render_indexed, strokes

#: The first 100 held-out scenes hold every kind of unlabelled face (the first digit mark is scene 64).
SCENES = 100


@pytest.fixture(scope="module")
def scenes():
    return [marks.render(i, "handwriting") for i in range(SCENES)]


def test_leaving_marks_out_changes_only_the_marks(scenes):
    met = collections.Counter()
    for i, (image, boxes, seen) in enumerate(scenes):
        plain, plain_boxes = render_indexed(ROBUSTNESS_SEED, i, family="handwriting")
        assert np.array_equal(image, plain) and boxes == plain_boxes  # recording alone changes nothing
        left_out, left_boxes, seen_again = marks.render(i, "handwriting", tuple(marks.KINDS))
        assert left_boxes == boxes and seen_again == seen  # the same scene, the same faces
        met.update(seen)
        if set(seen) - {"blank"}:
            changed = np.any(left_out != image, axis=-1) if image.ndim == 3 else left_out != image
            ys, xs = np.nonzero(changed)
            assert len(ys), i
            # the marks' ink: a few faces' worth of pixels, not the scene (a draw out of step changes ~all)
            assert (np.ptp(ys) + 1) * (np.ptp(xs) + 1) < 0.25 * changed.size, i
        else:
            assert np.array_equal(left_out, image), i
    assert set(met) == {"blank", *marks.KINDS}, met  # every kind met in these scenes


def test_each_kind_is_named_after_what_inked_it(monkeypatch, scenes):
    """Count the calls that ink an unlabelled face: a letter or symbol (never '1' or '2') through
    _draw_text, a distractor glyph through draw_glyph. Each marked face inks twice (the scratch copy,
    then the scene), so the calls are twice the faces of its kind."""
    calls = collections.Counter()
    others = {id(g) for g in handwriting.glyphs("other", "heldout")[0]}
    real_text, real_glyph = strokes._draw_text, handwriting.draw_glyph

    def text(canvas, rng, t, *args):
        calls["text"] += t not in ("1", "2")
        return real_text(canvas, rng, t, *args)

    def glyph(canvas, rng, g, *args):
        calls["digit"] += id(g) in others
        return real_glyph(canvas, rng, g, *args)

    monkeypatch.setattr(strokes, "_draw_text", text)
    monkeypatch.setattr(handwriting, "draw_glyph", glyph)
    seen = collections.Counter()
    for i in range(SCENES):
        seen.update(marks.render(i, "handwriting")[2])
    assert seen == sum((s for *_, s in scenes), collections.Counter())
    assert calls["text"] == 2 * seen["text"] > 0 and calls["digit"] == 2 * seen["digit"] > 0


def test_one_kind_left_out_keeps_the_others(scenes):
    checked = set()
    for i, (image, _, seen) in enumerate(scenes):
        kinds = set(seen) - {"blank"}
        if len(kinds) == 1 and not kinds <= checked:
            (kind,) = kinds
            for other in set(marks.KINDS) - kinds:
                assert np.array_equal(marks.render(i, "handwriting", (other,))[0], image), (i, other)
            assert not np.array_equal(marks.render(i, "handwriting", (kind,))[0], image), i
            checked |= kinds
    assert checked == set(marks.KINDS)


def test_an_unknown_kind_is_named():
    with pytest.raises(ValueError, match="unknown kind of mark.*'ink'"):
        marks.render(0, "handwriting", ("ink",))


@pytest.mark.parametrize("argv, line", [
    (["--family", "kitchen"], "--family kitchen: not a robustness family (one of topdown, "),
    (["--model", "nowhere.tflite"], "--model nowhere.tflite: model file not found"),
])
def test_bad_arguments_are_one_line_naming_them(argv, line, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        marks.main([*argv, "--json", str(tmp_path / "m.json")])
    assert exit_.value.code == 2 and line in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_the_run_reads_as_robustness_does(tmp_path):
    out = tmp_path / "marks.json"
    assert marks.main(["--count", "80", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "models/cube_detect.tflite" and len(result["model_sha256"]) == 64
    assert result["command"] == f"python -m bench.marks --count 80 --json {out}"
    assert (result["seed"], result["count"], result["family"]) == (ROBUSTNESS_SEED, 80, "handwriting")
    readings = result["readings"]
    assert set(readings) == {"as rendered", "no marks", "no text", "no digit", "no drawn"}
    detector = load_detector(marks.ROOT / result["model"], backend="cpu", decoding=DecodeSettings(max_cubes=10))
    table = robustness(detector, 80, ["handwriting"])
    assert readings["as rendered"]["exact"] == pytest.approx(100 * table["handwriting"]["exact_sequences"], abs=0.051)
    assert readings["as rendered"]["scenes_rerendered"] == 0
    marked = sum(n for kind, n in result["unlabelled_faces"].items() if kind != "blank")
    assert 0 < readings["no marks"]["scenes_rerendered"] <= marked
    each_kind = sum(readings[f"no {k}"]["scenes_rerendered"] for k in marks.KINDS)
    assert each_kind >= readings["no marks"]["scenes_rerendered"]
