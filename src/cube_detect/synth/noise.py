"""Low-level helpers of the renderer: the noise bank, per-thread scratch buffers, smooth
random fields, anti-aliased polygons and Catmull-Rom curves."""

from __future__ import annotations

import threading
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

_LOW = 4  # low-resolution maps (light, colour, folds) are 1/_LOW of the image

_NOISE_BANK: Optional[np.ndarray] = None
_NOISE_LEN = 1 << 21


def _noise_bank() -> np.ndarray:
    """A fixed run of N(0, 1) samples; scenes take random slices of it (fast, deterministic)."""
    global _NOISE_BANK
    if _NOISE_BANK is None:
        _NOISE_BANK = np.random.default_rng(0x5EED).standard_normal(_NOISE_LEN, dtype=np.float32)
    return _NOISE_BANK


def _noise_crop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An h x w field of N(0, 1) noise: a contiguous slice of the bank (a view, no copy)."""
    start = int(rng.integers(0, _NOISE_LEN - h * w + 1))
    return _noise_bank()[start : start + h * w].reshape(h, w)


_WORKSPACE = threading.local()


def _buffer(name: str, shape: Tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """A per-thread scratch array reused from scene to scene: fresh full-frame arrays cost
    page faults (about a third of the render time), reused ones do not. Never returned."""
    cache = getattr(_WORKSPACE, "buffers", None)
    if cache is None:
        cache = _WORKSPACE.buffers = {}
    key = (name, shape, np.dtype(dtype).str)
    buf = cache.get(key)
    if buf is None:
        buf = cache[key] = np.empty(shape, dtype)
    return buf


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Smooth random field in about [-1, 1] with ``cells`` blobs across the larger side."""
    gh = max(2, int(round(cells * h / max(h, w))) + 1)
    gw = max(2, int(round(cells * w / max(h, w))) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32) * 0.6
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _paint(img: np.ndarray, polys: Sequence[np.ndarray], value: float, scale: int = 4) -> None:
    """Alpha-blend anti-aliased polygons of one grey ``value`` into float image ``img``.
    OpenCV anti-aliases only 8-bit images, hence the uint8 mask."""
    pts_all = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in polys])
    h, w = img.shape[:2]
    x0, y0 = max(int(np.floor(pts_all[:, 0].min())) - 2, 0), max(int(np.floor(pts_all[:, 1].min())) - 2, 0)
    x1, y1 = min(int(np.ceil(pts_all[:, 0].max())) + 3, w), min(int(np.ceil(pts_all[:, 1].max())) + 3, h)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    shift = 1 << scale
    offset = np.array([x0, y0], np.float64)
    fixed = [np.round((np.asarray(p, np.float64).reshape(-1, 2) - offset) * shift).astype(np.int32) for p in polys]
    cv2.fillPoly(mask, fixed, 255, cv2.LINE_AA, scale)
    alpha = mask.astype(np.float32) * (1.0 / 255.0)
    roi = img[y0:y1, x0:x1]
    roi += alpha * (np.float32(value) - roi)


def _catmull_rom(points: np.ndarray, samples: int = 8) -> np.ndarray:
    """Smooth curve through ``points`` (k x 2), ``samples`` points per segment."""
    p = np.asarray(points, np.float64)
    if len(p) < 3:
        t = np.linspace(0.0, 1.0, samples + 1)[:, None]
        return p[0] + t * (p[-1] - p[0])
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[:, None, None]
    p0, p1, p2, p3 = ext[:-3], ext[1:-2], ext[2:-1], ext[3:]
    t2, t3 = t * t, t * t * t
    curve = 0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t3)
    curve = curve.transpose(1, 0, 2).reshape(-1, 2)
    return np.vstack([curve, p[-1:]])

