"""Training augmentation: the far zoom-out (a camera farther away) shrinks the faces and borders the
scene with its own median colour."""

import numpy as np
import pytest

from cube_detect import train


def _sample(channels=0):
    """A dark table under a large bright face: the median is the table's colour, far from the
    mean (about 140), from a mid grey and from the dark border of a slight zoom (0-30)."""
    table = (60, 110, 160)[:channels] if channels else 60
    image = np.full((168, 224, channels) if channels else (168, 224), table, np.uint8)
    image[30:140, 50:180] = 250
    return image, np.array([[1, 50.0, 30.0, 180.0, 140.0]])


def _draws(monkeypatch, share, n=200):
    monkeypatch.setattr(train, "ZOOM_OUT_SHARE", share)
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        img, boxes = train.augment(_sample(), rng)
        if len(boxes):
            out.append((img, (boxes[0, 3] - boxes[0, 1]) / 130.0))
    return out


def _table(img):
    """The table's colour after the photometric jitter, per channel: the mean of the middle row's
    darker pixels (the bright face is the rest; a median would lean toward the face's side)."""
    row = img.reshape(168, 224, -1)[84]
    dark = row < (row.min(axis=0) + row.max(axis=0)) / 2
    return np.array([row[dark[:, c], c].mean() for c in range(row.shape[1])])


def _corner_minus_table(img):
    """Corner pixel minus the table's colour, both after the same photometric jitter. The corner
    lies outside a scene shrunk to 0.75 or less (its margin is at least 0.005 of the frame)."""
    return img.reshape(168, 224, -1)[0, 0] - _table(img)


def test_far_zoom_shrinks_faces_to_its_range_on_the_scenes_median(monkeypatch):
    draws = _draws(monkeypatch, 1.0)
    scaled = [(img, s) for img, s in draws if abs(s - 1.0) > 1e-6]
    assert len(scaled) > 100  # 70 % of the samples are rescaled
    lo, hi = train.ZOOM_OUT_SCALE
    assert all(lo - 1e-6 <= s <= hi + 1e-6 for _, s in scaled)
    # The border is the table's colour (the median), not the mean nor a grey: on average over the
    # draws (the jitter's noise averages out) within half a percent of the range.
    assert abs(np.mean([_corner_minus_table(img) for img, _ in scaled])) < 0.005


def test_near_zoom_keeps_its_range_and_dark_border(monkeypatch):
    draws = _draws(monkeypatch, 0.0)
    scaled = [(img, s) for img, s in draws if abs(s - 1.0) > 1e-6]
    assert all(0.75 - 1e-6 <= s <= 1.35 + 1e-6 for _, s in scaled)
    # Shrunk and shifted, the scene leaves at least the corner opposite its shift uncovered: the
    # dark border (0-30) shows there, below the table (60).
    shrunk = [img for img, s in scaled if s < 0.85]
    corners = lambda img: min(float(img[y, x]) for y in (0, -1) for x in (0, -1))  # noqa: E731
    assert shrunk and np.mean([corners(img) - _table(img)[0] for img in shrunk]) < -0.05


@pytest.mark.parametrize("channels", [1, 3])
def test_far_zoom_borders_each_channel_with_its_own_median(monkeypatch, channels):
    monkeypatch.setattr(train, "ZOOM_OUT_SHARE", 1.0)
    image, boxes = _sample(channels)
    rng = np.random.default_rng(3)
    diffs = []
    for _ in range(100):
        img, out = train.augment((image, boxes), rng)
        assert img.shape[:2] == (168, 224) and img.dtype == np.float32
        if len(out) and out[0, 3] - out[0, 1] < 0.76 * 130:  # zoomed far out
            diffs.append(_corner_minus_table(img))
    assert len(diffs) > 40
    np.testing.assert_allclose(np.mean(diffs, axis=0), 0.0, atol=0.005)
