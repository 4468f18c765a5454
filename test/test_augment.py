"""Training augmentation: the far zoom-out (a camera farther away) shrinks the faces and borders the
scene with its own median colour."""

import numpy as np
import pytest

from cube_detect import train


def _sample():
    image = np.full((168, 224), 120, np.uint8)  # a mid-grey table...
    image[64:104, 92:132] = 250  # ...with one bright face in the middle
    return image, np.array([[1, 92.0, 64.0, 132.0, 104.0]])


def _draws(monkeypatch, share, n=200):
    monkeypatch.setattr(train, "ZOOM_OUT_SHARE", share)
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        img, boxes = train.augment(_sample(), rng)
        if len(boxes):
            out.append((img, (boxes[0, 3] - boxes[0, 1]) / 40.0))
    return out


def test_far_zoom_shrinks_faces_to_its_range_on_the_scenes_median(monkeypatch):
    draws = _draws(monkeypatch, 1.0)
    scaled = [(img, s) for img, s in draws if abs(s - 1.0) > 1e-6]
    assert len(scaled) > 100  # 70 % of the samples are rescaled
    lo, hi = train.ZOOM_OUT_SCALE
    assert all(lo - 1e-6 <= s <= hi + 1e-6 for _, s in scaled)
    # The corner lies outside the shrunk scene: it is the table's grey, as jittered as the table.
    for img, _ in scaled:
        assert abs(float(img[0, 0]) - float(np.median(img[40:60, 20:60]))) < 0.15


def test_near_zoom_keeps_its_range_and_dark_border(monkeypatch):
    draws = _draws(monkeypatch, 0.0)
    scaled = [(img, s) for img, s in draws if abs(s - 1.0) > 1e-6]
    assert all(0.75 - 1e-6 <= s <= 1.35 + 1e-6 for _, s in scaled)
    # Shrunk and shifted, the scene leaves at least the corner opposite its shift uncovered: dark.
    shrunk = [img for img, s in scaled if s < 0.85]
    corners = lambda img: min(float(img[y, x]) for y in (0, -1) for x in (0, -1))  # noqa: E731
    assert shrunk and all(corners(img) < float(np.median(img[60:70, 60:80])) - 0.1 for img in shrunk)


@pytest.mark.parametrize("channels", [1, 3])
def test_far_zoom_works_on_gray_and_colour_inputs(monkeypatch, channels):
    monkeypatch.setattr(train, "ZOOM_OUT_SHARE", 1.0)
    image, boxes = _sample()
    image = np.repeat(image[:, :, None], channels, axis=2)
    rng = np.random.default_rng(3)
    for _ in range(20):
        img, _ = train.augment((image, boxes), rng)
        assert img.shape[:2] == (168, 224) and img.dtype == np.float32
