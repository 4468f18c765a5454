"""What real cameras add on top of :func:`backgrounds._camera`, for training scenes only.

Real photos of the cells (docs/DOMAIN.md) include out-of-focus close-ups, hand-held motion,
dim rooms whose sensor gain amplifies noise, and colour casts from window or lamp light; the
base camera model covers the mild cases. Applied to scenes rendered with real handwriting
(``digits="mixed"``, what ``train`` uses), never to the evaluation families as rendered, so the
robustness table keeps comparing with earlier rounds. ``robustness --defocus / --dim``
(``evaluate.shifted_camera``) reuses :func:`defocus` and :func:`low_light` on them, at a fixed
strength, as a shifted camera.
"""

from __future__ import annotations

import cv2
import numpy as np


def _disk(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    kernel = np.zeros((2 * r + 1, 2 * r + 1), np.uint8)
    cv2.circle(kernel, (r, r), max(1, int(round(radius))), 1, -1, cv2.LINE_AA)
    kernel = kernel.astype(np.float32)
    return kernel / kernel.sum()


def defocus(img: np.ndarray, radius: float) -> np.ndarray:
    """``img`` (float32) through a lens out of focus: a disk blur of ``radius`` pixels."""
    return cv2.filter2D(img, -1, _disk(radius))


def low_light(img: np.ndarray, light: float, gain: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``img`` (float32) in a dim room: ``light`` times the photons, grey sensor noise of ``noise``
    levels (drawn from ``rng``), then the sensor's ``gain``."""
    field = rng.normal(0.0, noise, img.shape[:2]).astype(np.float32)[..., None]
    return (img * np.float32(light) + field) * np.float32(gain)


def camera_realism(rng: np.random.Generator, bgr: np.ndarray) -> np.ndarray:
    """Defocus or motion blur, low light with sensor gain, a colour cast (each sometimes)."""
    width = bgr.shape[1]
    img = bgr.astype(np.float32)
    r = rng.random()
    if r < 0.2:  # out of focus: a lens's disk blur, log-uniform up to 2.5 % of the frame width
        img = defocus(img, float(np.exp(rng.uniform(np.log(1.5), np.log(16.0)))) * width / 640)
    elif r < 0.27:  # a longer hand-held or arm motion than the base camera's
        k = int(rng.integers(6, 15))
        kernel = np.zeros((k, k), np.float32)
        angle = rng.uniform(0, np.pi)
        c = (k - 1) / 2
        dx, dy = c * np.cos(angle), c * np.sin(angle)
        cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    if rng.random() < 0.15:  # a dim room: few photons, then the sensor's gain
        light = rng.uniform(0.2, 0.5)
        gain = rng.uniform(0.6, 1.0) / light
        img = low_light(img, light, gain, rng.uniform(1.0, 3.0), rng)
    if rng.random() < 0.2 and not (np.array_equal(bgr[..., 0], bgr[..., 1])):  # colour cameras only
        img *= (1.0 + rng.normal(0.0, 0.08, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
