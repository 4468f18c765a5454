"""Synthetic scenes: photos of hand-written paper cubes, with their boxes, in scene families.

Families (:data:`FAMILIES`; training draws them from :data:`MIXTURE`):

- ``topdown`` (30 %): the dim top-down cells of docs/DOMAIN.md, described below;
- ``table`` (14 %): a camera at the cubes' height: 1-4 (mostly 3-4) cubes standing in a row on
  a wood or laminate table (grain, seams, a sheen, mirrored faces on glossy tops, contact and
  cast shadows, a hand's shadow), a thin band of their tops showing, a room behind (wall,
  window, curtains, posters and frames, furniture, cables); faces ~90-150 px; colour mostly;
- ``bright`` (14 %): light backgrounds that barely contrast with white-to-light-grey faces
  (white/grey tables, paper sheets, light wood, light rooms), even light; top-down or table level;
- ``closeup`` (14 %): one or two faces of 220-340 px (up to ~70 % of the frame height), top-down
  or table level, sometimes cut by the border;
- ``cut`` (14 %): the group pushed across one border (sometimes two), the outermost face
  35-95 % in frame or exactly touching the border; top-down or table level;
- ``rotated`` (14 %): top-down, faces turned in-plane up to +-60 deg (mostly 15-60 deg), the
  row turned with them when the camera is.

The cut-face rule (every family but topdown, which keeps ``MIN_VISIBLE``): a face at least
``LABEL_VISIBLE`` (35 %) in frame is labelled with the box of its visible part (what a labelImg
user draws); a face between ``SLIVER_VISIBLE`` (12 %) and 35 % in frame is never produced;
a sliver under 12 % stays, blank and unlabelled.

The top-down family in detail:

The shipped model is trained on these images only and judged on real photos (see
docs/DOMAIN.md), so the generator aims at the real scenes' variety rather than at beauty:

- each cube is a small 3-D box projected by a pinhole camera (in-plane roll up to 45 deg,
  slight tilt and perspective, a darker or lighter top/side showing), its front face a
  white-to-grey card (box-joint notches, dashed or burnt outlines, paper texture) carrying a
  marker digit drawn as jittered spline strokes (handwriting variants) or a Hershey font;
- the box of a face is the axis-aligned bounding box of the whole front-face quad, clipped to
  the image; faces less than ``MIN_VISIBLE`` in frame are never produced;
- distractors with no box: blank or otherwise marked cubes, bright objects at the border;
- dark cloth/table backgrounds (folds, weave, gradients), dim uneven light, vignetting, soft
  shadows; grayscale or low-saturation colour cameras; blur, noise, sharpening, JPEG.

Image ``i`` of seed ``s`` depends only on ``(s, i)``: ``np.random.default_rng([s, i])``, whose
first draw picks the family (:func:`family_of`); with a family given, on ``(s, i, family)``:
``np.random.default_rng([s, i, FAMILIES.index(family) + 1])``.
Rendering works on one float32 luminance plane and low-resolution maps (light, colour,
folds) so that a 640x480 scene takes a few milliseconds on one core.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from cube_detect.dataset import DatasetWriter, LabeledBox, SaveSummary
from cube_detect.errors import CubeDetectError
from cube_detect.labels import LABELS

SIZES: Tuple[Tuple[int, int], ...] = ((640, 480), (752, 480))
#: Scene families (see the module docstring) and the training mixture: topdown (the cells of
#: DOMAIN.md) keeps the largest share, every other family is well represented.
FAMILIES: Tuple[str, ...] = ("topdown", "table", "bright", "closeup", "cut", "rotated")
MIXTURE: Dict[str, float] = {"topdown": 0.30, "table": 0.14, "bright": 0.14, "closeup": 0.14, "cut": 0.14,
                             "rotated": 0.14}
_MIXTURE_P = np.array([MIXTURE[f] for f in FAMILIES]) / sum(MIXTURE.values())
#: A face less visible than this is moved back into the frame (never drawn unlabelled).
MIN_VISIBLE = 0.6
#: The cut-face rule (every family but topdown, which keeps MIN_VISIBLE): a face at least this
#: much in frame is labelled with the box of its visible part ...
LABEL_VISIBLE = 0.35
#: ... faces between SLIVER_VISIBLE and LABEL_VISIBLE in frame are never produced, and slivers
#: under SLIVER_VISIBLE stay, unlabelled and blank.
SLIVER_VISIBLE = 0.12
_LOW = 4  # low-resolution maps (light, colour, folds) are 1/_LOW of the image

# --------------------------------------------------------------------------- helpers

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


# --------------------------------------------------------------------------- digits and marks

# Key points of the pen path in digit-height units: x right, y down, the digit spans y in
# [-0.5, 0.5]. Each stroke is a list of key points; corners split strokes.


def _strokes_one(rng: np.random.Generator) -> List[np.ndarray]:
    """A 1: a stem, with or without a flag (straight, hooked, long European up-stroke, a
    short top serif) and with or without a foot. Never anything that bows right at the top
    and runs along the bottom (what makes a 2)."""
    xb = rng.normal(0.0, 0.03)
    xt = xb + rng.normal(0.02, 0.04)
    bow = rng.normal(0.0, 0.025)
    stem = np.array([[xt, -0.5], [0.5 * (xt + xb) + bow, 0.0], [xb, 0.5]])
    strokes = []
    flag = rng.choice(["none", "straight", "hook", "long", "cap"], p=[0.2, 0.4, 0.17, 0.13, 0.1])
    if flag == "none":
        strokes.append(stem)
    else:
        if flag == "straight":
            length, angle = rng.uniform(0.18, 0.35), math.radians(rng.uniform(25, 60))
            start = [xt - length * math.cos(angle), -0.5 + length * math.sin(angle)]
            path = [start, [xt, -0.5]]
        elif flag == "hook":
            path = [[xt - rng.uniform(0.18, 0.28), -0.5 + rng.uniform(0.12, 0.25)],
                    [xt - rng.uniform(0.06, 0.12), -0.5 + rng.uniform(0.02, 0.07)], [xt, -0.5]]
        elif flag == "long":  # the European long up-stroke
            length, angle = rng.uniform(0.3, 0.45), math.radians(rng.uniform(45, 70))
            path = [[xt - length * math.cos(angle), -0.5 + length * math.sin(angle)], [xt, -0.5]]
        else:  # a short, nearly flat serif at the top-left (print style)
            length = rng.uniform(0.1, 0.2)
            path = [[xt - length, -0.5 + rng.uniform(0.0, 0.06)], [xt, -0.5]]
        strokes.append(np.array(path, np.float64))
        strokes.append(stem)
    if rng.random() < 0.35:  # a foot: centred or mostly to the right, never a long base
        half = rng.uniform(0.12, 0.26)
        left = half * rng.uniform(0.6, 1.1)
        strokes.append(np.array([[xb - left, 0.5 + rng.normal(0, 0.015)],
                                 [xb + half * rng.uniform(0.8, 1.2), 0.5 + rng.normal(0, 0.015)]]))
    return strokes


def _strokes_two(rng: np.random.Generator) -> List[np.ndarray]:
    """A 2: a round (or angular) top, a diagonal, and a base: straight, looped (curly),
    wavy or an open curl; the top may start with a small curl."""
    w = rng.uniform(0.55, 0.8)  # width / height
    r = rng.uniform(-0.08, 0.08)  # roundness of the top
    if rng.random() < 0.2:  # angular top: a flatter arch and a straighter descent
        top = [[-0.40, -0.28], [-0.22, -0.47], [0.10, -0.5], [0.36, -0.38], [0.34, -0.16]]
    else:
        top = [[-0.42, -0.22 + r], [-0.30, -0.43], [-0.02, -0.5], [0.26, -0.44 - r / 2], [0.42, -0.26],
               [0.38, -0.06 + r / 2]]
    if rng.random() < 0.22:  # the pen starts with a small curl (ball terminal) at the left
        c = rng.uniform(0.06, 0.1)
        top = [[top[0][0] + c, top[0][1] + 0.02], [top[0][0] + c * 0.6, top[0][1] + c * 1.2],
               [top[0][0] - c * 0.3, top[0][1] + c * 0.8]] + top
    diag_mid = [0.12 + rng.normal(0, 0.05), 0.14]
    base_style = rng.choice(["straight", "loop", "wave", "curl"], p=[0.45, 0.3, 0.13, 0.12])
    strokes = []
    if base_style == "loop":
        ls = rng.uniform(0.8, 1.3)  # loop size
        body = top + [diag_mid, [-0.14, 0.33],
                      [-0.30 - 0.04 * ls, 0.40 + 0.02 * ls], [-0.34 - 0.05 * ls, 0.30 - 0.02 * ls],
                      [-0.24, 0.25 - 0.03 * ls], [-0.14, 0.35], [-0.10, 0.46], [0.10, 0.49], [0.45, 0.45]]
        strokes.append(np.array(body))
    elif base_style == "curl":  # one smooth stroke: the diagonal sweeps into a base that rises at the end
        body = top + [diag_mid, [-0.2, 0.36], [-0.40, 0.48], [-0.1, 0.47], [0.2, 0.5],
                      [0.45, 0.40 - rng.uniform(0, 0.08)]]
        strokes.append(np.array(body))
    else:
        corner = [-0.44, 0.5]
        strokes.append(np.array(top + [diag_mid, [-0.18, 0.33], corner]))
        if base_style == "straight":
            base = [corner, [0.0, 0.5 + rng.normal(0, 0.015)], [0.48, 0.48 + rng.normal(0, 0.02)]]
        else:
            base = [corner, [-0.15, 0.44], [0.1, 0.52], [0.46, 0.44]]
        strokes.append(np.array(base))
    out = []
    for s in strokes:
        s = s.copy()
        s[:, 0] *= w
        out.append(s)
    return out


def _jitter(rng: np.random.Generator, strokes: List[np.ndarray], amount: float) -> List[np.ndarray]:
    return [s + rng.normal(0.0, amount, s.shape) for s in strokes]


_HERSHEY = [
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
]
# Marks for faces that are NOT labelled: nothing that reads as a 1 or a 2 (no 7, Z, l, I, L...).
_OTHER_TEXT = list("ABCDEFGHKMNOPRUVWXY3456890?#&%@")


def _draw_strokes(canvas: np.ndarray, rng: np.random.Generator, strokes: List[np.ndarray], transform: np.ndarray,
                  thickness: float, ink: int) -> None:
    """Draw pen strokes (digit units) mapped by the 2x3 ``transform``; the pen width varies
    along a stroke (drawn in round-capped pieces of different widths)."""
    shift = 4
    for stroke in strokes:
        curve = _catmull_rom(stroke, 8 if len(stroke) > 2 else 12)
        pts = np.round((curve @ transform[:, :2].T + transform[:, 2]) * (1 << shift)).astype(np.int32)
        pieces = 3 if len(pts) > 12 else 1
        bounds = np.linspace(0, len(pts) - 1, pieces + 1).round().astype(int)
        for k in range(pieces):
            width = thickness * rng.uniform(0.88, 1.12)
            cv2.polylines(canvas, [pts[bounds[k] : bounds[k + 1] + 1]], False, ink, max(1, int(round(width))),
                          cv2.LINE_AA, shift)


def _draw_digit(canvas: np.ndarray, rng: np.random.Generator, label: Optional[str], size: int, ink: int) -> None:
    """Draw the digit for ``label`` ('one'/'two') or, for None, a non-digit mark (or nothing)."""
    height = size * rng.uniform(0.5, 0.72)
    pen = rng.choice(["marker", "felt", "pencil"], p=[0.72, 0.18, 0.1])
    if pen == "marker":  # thick black marker (the workshops' own faces)
        thickness = size * rng.uniform(0.055, 0.12)
    elif pen == "felt":  # a thinner felt pen
        thickness = size * rng.uniform(0.028, 0.055)
    else:  # pencil or ball-point: thin and grey, never fainter than a mid grey
        thickness = max(2.0, size * rng.uniform(0.018, 0.032))
        ink = max(ink, int(rng.uniform(0.3, 0.45) * 255))
    cx = size / 2 + rng.normal(0, 0.035) * size
    cy = size / 2 + rng.normal(0, 0.035) * size
    if label is None:
        kind = rng.choice(["blank", "text", "x", "o", "scribble", "dash", "dots"],
                          p=[0.35, 0.25, 0.1, 0.08, 0.1, 0.06, 0.06])
        if kind == "blank":
            return
        if kind == "text":
            _draw_text(canvas, rng, str(rng.choice(_OTHER_TEXT)), size, height, thickness, cx, cy, ink)
            return
        h = height / 2
        if kind == "x":
            strokes = [np.array([[-h, -h], [h, h]]) * 0.7, np.array([[h, -h], [-h, h]]) * 0.7]
        elif kind == "o":
            t = np.linspace(0, 2 * np.pi, 14)
            strokes = [np.stack([0.55 * h * np.cos(t), h * 0.8 * np.sin(t)], 1)]
        elif kind == "scribble":  # a wavy or zigzag line, wider than tall (never a lone bar)
            xs = np.linspace(-0.8 * h, 0.8 * h, int(rng.integers(4, 8)))
            ys = (np.arange(len(xs)) % 2 - 0.5) * rng.uniform(0.2, 0.9) * h
            strokes = [np.stack([xs, ys], 1)]
        elif kind == "dash":
            strokes = [np.array([[-h * 0.7, 0], [h * 0.7, rng.normal(0, 0.05 * h)]])]
        else:
            strokes = [np.array([[x, y], [x + 0.5, y]])
                       for x, y in rng.uniform(-h * 0.7, h * 0.7, (rng.integers(1, 4), 2))]
        transform = np.array([[1.0, 0, cx], [0, 1.0, cy]])
        _draw_strokes(canvas, rng, _jitter(rng, strokes, 0.02 * h), transform, thickness, ink)
        return
    if rng.random() < 0.3:
        _draw_text(canvas, rng, "1" if label == "one" else "2", size, height, thickness, cx, cy, ink)
        return
    strokes = _strokes_one(rng) if label == "one" else _strokes_two(rng)
    strokes = _jitter(rng, strokes, rng.uniform(0.006, 0.02))
    slant = rng.normal(0.0, 0.15)
    angle = math.radians(rng.normal(0.0, 5.0))
    c, s = math.cos(angle), math.sin(angle)
    shear = np.array([[1.0, -slant], [0.0, 1.0]])
    rot = np.array([[c, -s], [s, c]])
    lin = rot @ shear * height
    transform = np.hstack([lin, [[cx], [cy]]])
    _draw_strokes(canvas, rng, strokes, transform, thickness, ink)


def _draw_text(canvas: np.ndarray, rng: np.random.Generator, text: str, size: int, height: float, thickness: float,
               cx: float, cy: float, ink: int) -> None:
    font = int(rng.choice(_HERSHEY)) | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    t = max(1, int(round(thickness)))
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = height / max(th, 1)
    (tw, th), base = cv2.getTextSize(text, font, scale, t)
    org = (int(round(cx - tw / 2)), int(round(cy + th / 2)))
    cv2.putText(canvas, text, org, font, scale, ink, t, cv2.LINE_AA)


def _face_texture(rng: np.random.Generator, label: Optional[str], size: int, paper: float, style: dict) -> np.ndarray:
    """Front face albedo (uint8, size x size): card, notches/outlines, the digit."""
    p = int(round(paper * 255))
    tex = np.full((size, size), p, np.uint8)
    edge = style["edge"]
    ink_edge = int(p * style["edge_dark"])
    if edge == "notches":
        k = int(rng.integers(2, 5))
        depth = max(2, int(round(size * rng.uniform(0.03, 0.07))))
        seg = size / (2 * k + 1)
        for side in range(4):
            if rng.random() < 0.15:
                continue
            for j in range(k):
                a = int(round((2 * j + 1) * seg))
                b = int(round((2 * j + 2) * seg))
                rects = [(a, 0, b, depth), (a, size - depth, b, size), (0, a, depth, b), (size - depth, a, size, b)]
                x0, y0, x1, y1 = rects[side]
                cv2.rectangle(tex, (x0, y0), (x1 - 1, y1 - 1), ink_edge, -1)
    elif edge == "dashed":
        inset = size * rng.uniform(0.04, 0.1)
        dash = size * rng.uniform(0.03, 0.07)
        lw = max(1, int(round(size * rng.uniform(0.006, 0.015))))
        corners = np.array([[inset, inset], [size - inset, inset], [size - inset, size - inset], [inset, size - inset]])
        for i in range(4):
            a, b = corners[i], corners[(i + 1) % 4]
            n = max(2, int(np.linalg.norm(b - a) / (2 * dash)))
            for j in range(n):
                u0, u1 = j / n, (j + 0.55) / n
                pa, pb = a + (b - a) * u0, a + (b - a) * u1
                cv2.line(tex, (int(pa[0] * 16), int(pa[1] * 16)), (int(pb[0] * 16), int(pb[1] * 16)), ink_edge, lw,
                         cv2.LINE_AA, 4)
    elif edge == "outline":
        lw = max(1, int(round(size * rng.uniform(0.008, 0.025))))
        cv2.rectangle(tex, (0, 0), (size - 1, size - 1), ink_edge, lw)
    if rng.random() < 0.15:  # a stray pencil/marker mark or smudge in a corner
        x, y = (rng.uniform(0.08, 0.92, 2) * size).astype(int)
        if min(x, y, size - x, size - y) < size * 0.2:
            cv2.circle(tex, (int(x), int(y)), max(1, int(size * rng.uniform(0.01, 0.03))),
                       int(p * rng.uniform(0.3, 0.8)), -1, cv2.LINE_AA)
    ink = int(round(255 * style["ink"]))
    _draw_digit(tex, rng, label, size, ink)
    return tex


# --------------------------------------------------------------------------- cubes


def _rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return rz @ rx @ ry


_CUBE = np.array([[x, y, z] for z in (-0.5, 0.5) for y in (-0.5, 0.5) for x in (-0.5, 0.5)], np.float64)
# Faces as vertex loops (x right, y down, z away from the camera); the front face is z = -0.5.
_FRONT = np.array([0, 1, 3, 2])
_SIDE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, -1, 0], [0, 1, 0]], np.float64)
_SIDE_LOOPS = np.array([[1, 5, 7, 3], [0, 2, 6, 4], [0, 4, 5, 1], [2, 3, 7, 6]])


class _Cube:
    """A projected cube: front quad (TL, TR, BR, BL in face coordinates), visible sides, hull."""

    def __init__(self, size: float, roll: float, pitch: float, yaw: float, dist: float, label: Optional[str]):
        self.size, self.roll, self.pitch, self.yaw, self.dist, self.label = size, roll, pitch, yaw, dist, label
        self.center = np.zeros(2)
        self.index = 0
        self.depth = 0.0  # table-level rows: how far behind the others (smaller, higher)
        self.blank = False  # a sliver at the border: drawn without any mark
        self._project()

    def _project(self) -> None:
        rot = _rotation(self.roll, self.pitch, self.yaw)
        v = _CUBE @ rot.T
        v[:, 2] += self.dist
        pts = v[:, :2] * ((self.size * (self.dist - 0.5)) / v[:, 2:3]) + self.center
        self.front = pts[_FRONT]
        normals = _SIDE_NORMALS @ rot.T
        centres = v[_SIDE_LOOPS].mean(axis=1)
        facing = np.einsum("ij,ij->i", normals, centres) < -1e-3  # seen from the camera
        self.sides = [(pts[_SIDE_LOOPS[k]], normals[k]) for k in np.flatnonzero(facing)]
        self.hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)

    def move_to(self, center) -> None:
        delta = np.asarray(center, np.float64) - self.center
        self.center = self.center + delta
        self.front = self.front + delta
        self.sides = [(p + delta, n) for p, n in self.sides]
        self.hull = self.hull + delta

    def reproject(self, pitch: float, yaw: float) -> None:
        self.pitch, self.yaw = pitch, yaw
        self._project()


def _overlaps(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Whether convex polygons a and b, each grown by about ``gap`` px, intersect."""
    lo_a, hi_a, lo_b, hi_b = a.min(axis=0), a.max(axis=0), b.min(axis=0), b.max(axis=0)
    if np.any(lo_a > hi_b + 2 * gap) or np.any(lo_b > hi_a + 2 * gap):
        return False
    ca, cb = (lo_a + hi_a) / 2, (lo_b + hi_b) / 2
    ga = ca + (a - ca) * (1 + 2 * gap / max(hi_a[0] - lo_a[0], 1))
    gb = cb + (b - cb) * (1 + 2 * gap / max(hi_b[0] - lo_b[0], 1))
    area, _ = cv2.intersectConvexConvex(ga.astype(np.float32), gb.astype(np.float32))
    return area > 0


def _visible_fraction(quad: np.ndarray, width: int, height: int) -> float:
    rect = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    inter, _ = cv2.intersectConvexConvex(quad.astype(np.float32), rect)
    return float(inter) / max(float(cv2.contourArea(quad.astype(np.float32))), 1e-6)


def _layout(rng: np.random.Generator, width: int, height: int, focal: float, cam: Tuple[float, float], *,
            counts: Optional[Sequence[float]] = None, size_range: Optional[Tuple[float, float]] = None,
            roll_max: float = 45.0, cut: bool = False, vertical_p: float = 0.3) -> List[_Cube]:
    """Place 1-4 labelled cubes (and maybe unlabelled ones), usually in a row, never overlapping.

    The defaults give the top-down family; ``counts`` (probabilities of 1..4 faces),
    ``size_range`` (face side, px), ``roll_max`` (in-plane turn, degrees) and ``cut`` (push the
    group across a frame border, see :func:`_cut_shift`) give the other families' variants."""
    default = counts is None and size_range is None and roll_max <= 45.0 and not cut
    vertical = rng.random() < vertical_p
    scatter = rng.random() < 0.15
    if counts is not None:
        vertical = vertical and counts[3] == 0.0
    default_counts = [0.3, 0.4, 0.3, 0.0] if vertical else [0.2, 0.3, 0.28, 0.22]
    n = int(rng.choice([1, 2, 3, 4], p=counts if counts is not None else default_counts))
    labels: List[Optional[str]] = [str(rng.choice(list(LABELS.values()))) for _ in range(n)]
    n_extra = int(rng.choice([0, 1, 2], p=[0.8, 0.15, 0.05]))
    for _ in range(n_extra if n + n_extra <= (3 if vertical else 4) else 0):
        labels.insert(int(rng.integers(0, len(labels) + 1)), None)  # an unlabelled cube in the row
    size = rng.uniform(140, 210) if rng.random() < 0.88 else rng.uniform(115, 240)
    if size_range is not None:
        size = rng.uniform(*size_range)
    min_size = 100.0 if size_range is None else 0.85 * size_range[0]
    gaps = rng.uniform(3, 45, len(labels))
    row_angle = (math.pi / 2 if vertical else 0.0) + math.radians(rng.normal(0, 6))
    direction = np.array([math.cos(row_angle), math.sin(row_angle)])
    normal = np.array([-direction[1], direction[0]])
    base_roll = math.radians(float(np.clip(rng.normal(0, 14), -45, 45)))
    free_roll = rng.random() < 0.25
    dist = rng.uniform(4.0, 10.0)  # camera distance in cube sides: perspective strength
    rolls = [float(np.clip(math.radians(rng.uniform(-45, 45)) if free_roll
                           else base_roll + math.radians(rng.normal(0, 5)),
                           -math.pi / 4, math.pi / 4)) for _ in labels]
    if roll_max > 45.0:  # turned faces: mostly well turned (15 deg .. roll_max), either way
        lim = math.radians(roll_max)
        if rng.random() < 0.85:
            base_roll = math.radians(rng.choice([-1.0, 1.0]) * rng.uniform(15, roll_max))
        else:
            base_roll = math.radians(rng.uniform(-15, 15))
        rolls = [float(np.clip(math.radians(rng.uniform(-roll_max, roll_max)) if free_roll
                               else base_roll + math.radians(rng.normal(0, 5)),
                               -lim, lim)) for _ in labels]
        if not free_roll and rng.random() < 0.5:  # the camera itself is turned: the row turns too
            row_angle += base_roll
            direction = np.array([math.cos(row_angle), math.sin(row_angle)])
            normal = np.array([-direction[1], direction[0]])
    tilts = rng.normal(0, 0.06, (len(labels), 2)) + cam
    scales = rng.uniform(0.94, 1.06, len(labels))
    wander = rng.normal(0, 0.04, len(labels))
    overflow = rng.random() < 0.06  # let the row run off the frame (faces < MIN_VISIBLE are dropped)
    margin = rng.uniform(2, 30)
    centre = np.array([width / 2, height / 2])

    def view(cube: _Cube) -> None:
        # The camera sees off-centre cubes a little from the side: tilt follows the position.
        dx, dy = (cube.center - centre) / focal
        c = cube.center.copy()
        i = cube.index
        pitch = float(np.clip(tilts[i, 0] - math.atan(dy) * 0.7, -0.6, 0.6))
        yaw = float(np.clip(tilts[i, 1] + math.atan(dx) * 0.7, -0.6, 0.6))
        cube.reproject(pitch, yaw)
        cube.move_to(c)

    for _attempt in range(4):
        cubes = []
        for i, label in enumerate(labels):
            cube = _Cube(size * scales[i], rolls[i], tilts[i, 0], tilts[i, 1], dist, label)
            cube.index = i
            cubes.append(cube)
        if scatter:
            placed: List[_Cube] = []
            for cube in sorted(cubes, key=lambda c: c.label is None):  # labelled cubes first
                for _ in range(30):
                    m = cube.size * 0.6
                    cube.move_to([rng.uniform(m, max(m + 1, width - m)), rng.uniform(m, max(m + 1, height - m))])
                    view(cube)
                    if not any(_overlaps(cube.hull, other.hull, 6) for other in placed):
                        placed.append(cube)
                        break
            cubes = placed
            break
        pos = 0.0
        for i, cube in enumerate(cubes):
            if i:
                prev = cubes[i - 1]
                prev_reach = ((prev.hull - prev.center) @ direction).max()
                cube_reach = ((cube.hull - cube.center) @ direction).min()
                pos += prev_reach + gaps[i] - cube_reach
            cube.move_to(centre + direction * pos + normal * wander[i] * size)
        for cube in cubes:
            cube.move_to(cube.center - direction * pos / 2)
            view(cube)
        for i in range(1, len(cubes)):  # keep the gaps after the reprojection
            while _overlaps(cubes[i - 1].hull, cubes[i].hull, 3):
                for cube in cubes[i:]:
                    cube.move_to(cube.center + direction * 4)
        pts = np.concatenate([c.hull for c in cubes])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        room = np.array([width, height]) - 2 * margin - (hi - lo)
        if overflow or room.min() >= 0 or _attempt == 3:
            break
        size *= max(0.75, min(1.0, float(np.min((np.array([width, height]) - 2 * margin) / (hi - lo)))))
        size = max(size, min_size)
    if not scatter:
        pts = np.concatenate([c.hull for c in cubes])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        shift = np.zeros(2)
        for k, extent in enumerate((width, height)):
            low_t, high_t = margin - lo[k], extent - margin - hi[k]
            if overflow:
                low_t, high_t = -lo[k] - size * 0.5, extent - hi[k] + size * 0.5
            shift[k] = rng.uniform(low_t, high_t) if high_t >= low_t else (low_t + high_t) / 2
        for cube in cubes:
            cube.move_to(cube.center + shift)
    if default:
        kept = [c for c in cubes if _visible_fraction(c.front, width, height) >= MIN_VISIBLE]
    else:
        if cut:
            _cut_shift(rng, cubes, width, height, ("left", "right", "top", "bottom"))
        kept = _apply_visibility(cubes, width, height)
    if not any(c.label for c in kept):  # never a scene without a face by accident
        cube = _Cube(min(size, 200.0) if default else size, rolls[0], tilts[0, 0], tilts[0, 1], dist,
                     str(rng.choice(list(LABELS.values()))))
        cube.move_to(centre + rng.uniform(-40, 40, 2))
        kept = [c for c in kept if not _overlaps(c.hull, cube.hull, 3)] + [cube]
    return kept


def _cut_shift(rng: np.random.Generator, cubes: List[_Cube], width: int, height: int, sides: Sequence[str]) -> None:
    """Move the whole group across one frame border (sometimes two: a corner) so that the
    outermost face on that side is cut: between LABEL_VISIBLE + a margin and 100 % of it stays
    in frame (100 %: its edge lies on the border, as a '1' standing on the frame's bottom)."""
    labelled = [c for c in cubes if c.label is not None] or cubes
    first = str(rng.choice(list(sides)))
    chosen = [first]
    perpendicular = [s for s in sides if (s in ("left", "right")) != (first in ("left", "right"))]
    if perpendicular and rng.random() < 0.25:
        chosen.append(str(rng.choice(perpendicular)))
    extent = (width, height)
    for side in chosen:
        axis = 0 if side in ("left", "right") else 1
        low = side in ("left", "top")
        target = (min(labelled, key=lambda c: c.front[:, axis].min()) if low
                  else max(labelled, key=lambda c: c.front[:, axis].max()))
        lo, hi = target.front[:, axis].min(), target.front[:, axis].max()
        keep = 1.0 if rng.random() < 0.25 else rng.uniform(LABEL_VISIBLE + 0.07, 0.95)
        delta = np.zeros(2)
        delta[axis] = -(lo + (1 - keep) * (hi - lo)) if low else extent[axis] - (hi - (1 - keep) * (hi - lo))
        for cube in cubes:
            cube.move_to(cube.center + delta)
        step = np.zeros(2)
        step[axis] = (1 if low else -1) * 0.02 * (hi - lo)
        for _ in range(40):  # turned or tilted faces: make sure the target stays labellable
            if _visible_fraction(target.front, width, height) >= LABEL_VISIBLE + 0.05:
                break
            for cube in cubes:
                cube.move_to(cube.center + step)


def _apply_visibility(cubes: List[_Cube], width: int, height: int) -> List[_Cube]:
    """The cut-face rule, the same in every family: a face at least LABEL_VISIBLE in frame is
    labelled (its box is the visible part, see :func:`_face_box`); a face between
    SLIVER_VISIBLE and LABEL_VISIBLE in frame is never produced (its cube is removed: a human
    might or might not label it); a sliver under SLIVER_VISIBLE stays, unlabelled and blank
    (no digit part shows at the border)."""
    kept = []
    for cube in cubes:
        v = _visible_fraction(cube.front, width, height)
        if v >= LABEL_VISIBLE:
            kept.append(cube)
        elif 0.0 < v < SLIVER_VISIBLE:
            cube.label = None
            cube.blank = True
            kept.append(cube)
    return kept


def _face_box(quad: np.ndarray, width: int, height: int) -> Optional[Tuple[int, int, int, int]]:
    """The box a labelImg user draws: around the face's visible part, inside the image."""
    xmin, ymin = int(math.floor(quad[:, 0].min())), int(math.floor(quad[:, 1].min()))
    xmax, ymax = int(math.ceil(quad[:, 0].max())), int(math.ceil(quad[:, 1].max()))
    if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
        rect = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
        area, inter = cv2.intersectConvexConvex(quad.astype(np.float32), rect)
        if area <= 0 or inter is None:
            return None
        inter = inter.reshape(-1, 2)
        xmin, ymin = int(math.floor(inter[:, 0].min() + 1e-3)), int(math.floor(inter[:, 1].min() + 1e-3))
        xmax, ymax = int(math.ceil(inter[:, 0].max() - 1e-3)), int(math.ceil(inter[:, 1].max() - 1e-3))
    xmin, ymin, xmax, ymax = max(xmin, 0), max(ymin, 0), min(xmax, width), min(ymax, height)
    if xmax <= xmin or ymax <= ymin:
        return None
    return xmin, ymin, xmax, ymax


def _render_cube(lum: np.ndarray, rng: np.random.Generator, cube: _Cube, light_dir: np.ndarray,
                 paper_range: Optional[Tuple[float, float]] = None) -> None:
    h, w = lum.shape
    paper = rng.uniform(0.72, 0.98) if rng.random() < 0.85 else rng.uniform(0.55, 0.72)
    if paper_range is not None:
        paper = rng.uniform(*paper_range)
    # Sides: card lit differently (the top often brighter, the sides darker), never a digit.
    for quad, normal in cube.sides:
        facing = float(-normal[:2] @ light_dir)  # > 0: side turned towards the light
        shade = np.clip(rng.uniform(0.55, 0.9) + 0.35 * facing, 0.3, 1.15)
        _paint(lum, [quad], paper * shade)
        if rng.random() < 0.5:  # the cube edge between side and face: a thin darker line
            pts = (np.round(quad * 16)).astype(np.int32)
            cv2.polylines(lum, [pts], True, float(paper * shade * 0.7), 1, cv2.LINE_8, 4)
    # Front face: texture warped onto the projected quad (anti-aliased through its alpha).
    tsize = int(np.clip(round(cube.size * 1.05), 64, 360))
    style = {
        "edge": rng.choice(["plain", "notches", "dashed", "outline"], p=[0.38, 0.3, 0.14, 0.18]),
        "edge_dark": rng.uniform(0.25, 0.8),
        "ink": rng.uniform(0.03, 0.16) if rng.random() < 0.9 else rng.uniform(0.16, 0.3),
    }
    tex = (_face_texture(rng, cube.label, tsize, 1.0, style) if not cube.blank
           else np.full((tsize, tsize), 255, np.uint8))
    quad = cube.front
    x0, y0 = max(int(np.floor(quad[:, 0].min())) - 1, 0), max(int(np.floor(quad[:, 1].min())) - 1, 0)
    x1, y1 = min(int(np.ceil(quad[:, 0].max())) + 2, w), min(int(np.ceil(quad[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return
    dst = (quad - [x0, y0]).astype(np.float32)
    src = np.array([[0, 0], [tsize, 0], [tsize, tsize], [0, tsize]], np.float32)
    hom = cv2.getPerspectiveTransform(src - 0.5, dst - 0.5)
    rw, rh = x1 - x0, y1 - y0
    warped = cv2.warpPerspective(tex, hom, (rw, rh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # an anti-aliased alpha for the outline (OpenCV anti-aliases 8-bit images only)
    mask = np.zeros((rh, rw), np.uint8)
    cv2.fillConvexPoly(mask, np.round(dst * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
    # paper: albedo, shading across the face (not flat, not evenly lit), grain
    g = rng.normal(0, 0.06 / cube.size, 2).astype(np.float32)
    col_offset = (np.arange(rw, dtype=np.float32) - rw / 2)[None, :]
    row_offset = (np.arange(rh, dtype=np.float32) - rh / 2)[:, None]
    ramp = 1.0 + g[0] * col_offset + g[1] * row_offset
    face = warped.astype(np.float32)
    face *= ramp * np.float32(paper / 255.0)
    face += _noise_crop(rng, rh, rw) * np.float32(rng.uniform(0.004, 0.02))
    roi = lum[y0:y1, x0:x1]
    roi += mask.astype(np.float32) * np.float32(1 / 255) * (face - roi)


# --------------------------------------------------------------------------- background


def _background(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """Dark cloth or table albedo (full size float32) and a low-res colour tint map (h, w, 3)."""
    lw, lh = width // _LOW, height // _LOW
    kind = rng.choice(["cloth", "table", "grey"], p=[0.6, 0.3, 0.1])
    base = rng.uniform(0.025, 0.12) if kind != "grey" else rng.uniform(0.1, 0.2)
    low = np.full((lh, lw), base, np.float32)
    low *= 1.0 + rng.uniform(0.1, 0.5) * _smooth_noise(rng, lh, lw, rng.uniform(2, 6))
    if kind == "cloth":
        folds = np.zeros((lh, lw), np.float32)
        for _ in range(int(rng.integers(0, 7))):
            k = int(rng.integers(3, 6))
            start = rng.uniform([0, 0], [lw, lh])
            heading = rng.uniform(0, 2 * np.pi)
            pts = [start]
            for _ in range(k):
                heading += rng.normal(0, 0.35)
                pts.append(pts[-1] + rng.uniform(15, 45) * np.array([math.cos(heading), math.sin(heading)]))
            curve = _catmull_rom(np.array(pts), 6)
            offset = np.array([-math.sin(heading), math.cos(heading)]) * rng.uniform(1.0, 3.0)
            amp = rng.uniform(0.3, 1.2)
            thick = int(rng.integers(1, 4))
            cv2.polylines(folds, [np.round((curve + offset) * 16).astype(np.int32)], False, amp, thick, cv2.LINE_8, 4)
            cv2.polylines(folds, [np.round((curve - offset) * 16).astype(np.int32)], False, -amp * 0.6, thick,
                          cv2.LINE_8, 4)
        folds = cv2.GaussianBlur(folds, (0, 0), rng.uniform(1.0, 2.5))
        low *= np.clip(1.0 + folds, 0.3, 3.0)
    elif kind == "table" and rng.random() < 0.5:  # wood or plank seams: faint parallel bands
        y = np.arange(lh, dtype=np.float32)[:, None]
        low *= 1.0 + 0.15 * np.sin(y * rng.uniform(0.05, 0.3) + rng.uniform(0, 6)) * rng.random()
    if rng.random() < 0.5:  # a sharp table/cloth edge: one part darker or lighter
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
        side = (xx - rng.uniform(0, lw)) * math.cos(angle) + (yy - rng.uniform(0, lh)) * math.sin(angle)
        low *= np.where(side > 0, np.float32(rng.uniform(0.5, 1.8)), np.float32(1.0))
    shape = (height, width)
    lum = cv2.resize(low, (width, height), dst=_buffer("lum", shape), interpolation=cv2.INTER_LINEAR)
    # weave / grain: high-frequency multiplicative texture, sometimes stretched (fabric threads)
    tex = _noise_crop(rng, height, width)
    if rng.random() < 0.4:
        k = int(rng.integers(2, 4))
        tex = cv2.resize(tex[: height // k + 1], (width, height), dst=_buffer("tmp", shape),
                         interpolation=cv2.INTER_LINEAR)
    weave = cv2.multiply(lum, tex, dst=_buffer("tmp2", shape), scale=rng.uniform(0.05, 0.35))
    lum = cv2.add(lum, weave, dst=lum)
    # colour tint of the background (black cloth is rarely neutral)
    tint = np.ones((lh, lw, 3), np.float32) * (1.0 + rng.normal(0, 0.08, 3)).astype(np.float32)
    return lum, tint


def _capsule(p0: np.ndarray, p1: np.ndarray, radius: float) -> np.ndarray:
    """Polygon of a rounded bar from p0 to p1 (robot link, finger, pen)."""
    d = p1 - p0
    ang = math.degrees(math.atan2(d[1], d[0]))
    a = cv2.ellipse2Poly((0, 0), (100, 100), 0, int(ang) + 90, int(ang) + 270, 20).astype(np.float64) * (radius / 100)
    b = cv2.ellipse2Poly((0, 0), (100, 100), 0, int(ang) - 90, int(ang) + 90, 20).astype(np.float64) * (radius / 100)
    return np.vstack([a + p0, b + p1])


def _border_objects(rng: np.random.Generator, lum: np.ndarray, tint: np.ndarray, keep_out: List[np.ndarray]) -> None:
    """Things at the image border that are not faces: paper, robot links, a hand, a pen, a
    cable, a cardboard box. Never on a cube (they would hide a labelled face)."""
    h, w = lum.shape
    for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.45, 0.35, 0.15, 0.05]))):
        side = int(rng.integers(0, 4))
        t = rng.uniform(0.05, 0.95)
        anchor = [np.array([t * w, 0.0]), np.array([w, t * h]), np.array([t * w, h]), np.array([0.0, t * h])][side]
        inward = [np.array([0, 1.0]), np.array([-1.0, 0]), np.array([0, -1.0]), np.array([1.0, 0])][side]
        across = np.array([-inward[1], inward[0]])
        kind = rng.choice(["paper", "link", "hand", "pen", "cable", "box"], p=[0.24, 0.27, 0.08, 0.13, 0.15, 0.13])
        colour = 1.0 + rng.normal(0, 0.12, 3)
        polys: List[np.ndarray] = []
        value = rng.uniform(0.25, 0.9)
        if kind == "paper":  # a sheet or card, partly out of frame
            size = rng.uniform(120, 380)
            c = anchor + inward * size * rng.uniform(0.0, 0.35)
            polys = [cv2.boxPoints(((float(c[0]), float(c[1])), (size * rng.uniform(0.6, 1.4), size),
                                    rng.uniform(0, 180))).astype(np.float64)]
            value, colour = rng.uniform(0.45, 0.95), 1.0 + rng.normal(0, 0.04, 3)
        elif kind == "link":  # robot arm link or base: rounded bar, light or dark plastic
            p0 = anchor - inward * rng.uniform(0, 60)
            p1 = p0 + (inward * rng.uniform(0.3, 1.0) + across * rng.normal(0, 0.5)) * rng.uniform(60, 180)
            polys = [_capsule(p0, p1, rng.uniform(25, 60))]
            value = rng.choice([rng.uniform(0.08, 0.2), rng.uniform(0.4, 0.85)])
            colour = 1.0 + rng.normal(0, 0.05, 3)
        elif kind == "hand":  # palm and fingers, skin tone
            palm = anchor - inward * rng.uniform(0, 40)
            r = rng.uniform(40, 70)
            polys = [cv2.ellipse2Poly((int(palm[0]), int(palm[1])), (int(r * 1.2), int(r)), int(rng.uniform(0, 180)),
                                      0, 360, 15).astype(np.float64)]
            for k in range(int(rng.integers(1, 5))):
                base = palm + across * (k - 1.5) * r * 0.5 + inward * r * 0.5
                tip = base + (inward + across * rng.normal(0, 0.15)) * rng.uniform(1.0, 1.7) * r
                polys.append(_capsule(base, tip, r * rng.uniform(0.22, 0.28)))
            value, colour = rng.uniform(0.3, 0.65), np.array([0.85, 0.95, 1.25]) + rng.normal(0, 0.05, 3)
        elif kind == "pen":
            p0 = anchor - inward * rng.uniform(0, 30)
            p1 = p0 + (inward + across * rng.normal(0, 0.8)) * rng.uniform(60, 160)
            polys = [_capsule(p0, p1, rng.uniform(5, 10))]
            value, colour = rng.uniform(0.05, 0.7), 1.0 + rng.normal(0, 0.3, 3)
        elif kind == "box":  # cardboard box or the mobile robot's body
            size = rng.uniform(150, 350)
            c = anchor + inward * size * rng.uniform(-0.1, 0.3)
            polys = [cv2.boxPoints(((float(c[0]), float(c[1])), (size, size * rng.uniform(0.5, 1.0)),
                                    rng.uniform(0, 180))).astype(np.float64)]
            value, colour = rng.uniform(0.15, 0.5), np.array([0.8, 0.95, 1.15]) + rng.normal(0, 0.05, 3)
        else:  # cable: a dark or grey curve
            pts = [anchor - inward * 10]
            heading = math.atan2(inward[1], inward[0]) + rng.normal(0, 0.6)
            for _ in range(6):
                heading += rng.normal(0, 0.4)
                pts.append(pts[-1] + 40 * np.array([math.cos(heading), math.sin(heading)]))
            curve = _catmull_rom(np.array(pts), 6)
            cv2.polylines(lum, [np.round(curve * 16).astype(np.int32)], False, float(rng.uniform(0.05, 0.4)),
                          int(rng.integers(4, 12)), cv2.LINE_8, 4)
            continue
        if any(_overlaps(cv2.convexHull(p.astype(np.float32)).reshape(-1, 2).astype(np.float64), k, 10)
               for p in polys for k in keep_out):
            continue
        _paint(lum, polys, value)
        if rng.random() < 0.6:  # lit from one side: a lighter or darker inner part
            c = np.concatenate(polys).mean(axis=0)
            shift = rng.normal(0, 6, 2)
            _paint(lum, [(p - c) * rng.uniform(0.75, 0.92) + c + shift for p in polys], value * rng.uniform(0.8, 1.2))
        if kind == "link" and rng.random() < 0.7:  # screws / holes
            for p in polys:
                for q in p[rng.integers(0, len(p), int(rng.integers(1, 4)))]:
                    c = q + (p.mean(axis=0) - q) * 0.25
                    cv2.circle(lum, (int(c[0]), int(c[1])), int(rng.uniform(3, 7)), float(value * 0.3), -1)
        for p in polys:
            cv2.fillPoly(tint, [np.round(p / _LOW).astype(np.int32)], tuple(float(x) for x in colour))


def _light_map(rng: np.random.Generator, lw: int, lh: int, cubes: List[_Cube],
               strength: float = 1.0) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Low-res illumination (gradient, a lamp spot, vignetting), the light's direction in the
    image, and the low-res shade cast by the cubes on the table (or None). ``strength`` < 1
    evens the light out (bright rooms)."""
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    xn, yn = (xx - lw / 2) / (lw / 2), (yy - lh / 2) / (lh / 2)
    light_angle = rng.uniform(0, 2 * np.pi)
    light_dir = np.array([math.cos(light_angle), math.sin(light_angle)])
    light = 1.0 + rng.uniform(0.0, 0.32) * strength * (xn * np.float32(light_dir[0]) + yn * np.float32(light_dir[1]))
    if rng.random() < 0.5:
        sx, sy = rng.uniform(-1, 1, 2)
        light += np.float32(rng.uniform(0.1, 0.6) * strength) * np.exp(-((xn - sx) ** 2 + (yn - sy) ** 2)
                                                                        / np.float32(rng.uniform(0.2, 1.2)))
    light *= 1.0 - np.float32(rng.uniform(0.0, 0.6) * strength) * (xn * xn + yn * yn) * 0.5  # vignetting
    shade = None
    if cubes and rng.random() < 0.8:
        shadow = np.zeros((lh, lw), np.float32)
        offset = -light_dir * rng.uniform(0.1, 0.35)
        for cube in cubes:
            hull = (cube.hull + offset * cube.size) / _LOW
            cv2.fillConvexPoly(shadow, np.round(hull * 16).astype(np.int32), 1.0, cv2.LINE_8, 4)
        shade = 1.0 - np.float32(rng.uniform(0.3, 0.8)) * cv2.GaussianBlur(shadow, (0, 0), rng.uniform(2, 6))
    return np.maximum(light, np.float32(0.08)), light_dir, shade


def _camera(rng: np.random.Generator, lum: np.ndarray, tint: np.ndarray, face_level: float,
            colour_p: float = 0.55, saturation: Tuple[float, float] = (0.15, 0.8)) -> np.ndarray:
    """Optics, sensor and encoding: float luminance (+ low-res tint) -> BGR uint8.

    ``lum`` is a scratch buffer; full-frame steps write into scratch buffers (see _buffer)."""
    height, width = shape = lum.shape
    tmp = _buffer("tmp", shape)
    lum, tmp = cv2.GaussianBlur(lum, (0, 0), rng.uniform(0.3, 1.6), dst=tmp), lum  # focus
    r = rng.random()
    if r < 0.08:  # motion blur
        k = int(rng.integers(3, 9))
        kernel = np.zeros((k, k), np.float32)
        ang, c = rng.uniform(0, np.pi), (k - 1) / 2
        cv2.line(kernel, (int(round(c - c * math.cos(ang))), int(round(c - c * math.sin(ang)))),
                 (int(round(c + c * math.cos(ang))), int(round(c + c * math.sin(ang)))), 1.0, 1)
        lum, tmp = cv2.filter2D(lum, -1, kernel / kernel.sum(), dst=tmp), lum
    elif r < 0.25:  # a lower-resolution sensor, upscaled
        f = rng.uniform(0.45, 0.8)
        small = cv2.resize(lum, (int(width * f), int(height * f)), interpolation=cv2.INTER_AREA)
        lum, tmp = cv2.resize(small, (width, height), dst=tmp, interpolation=cv2.INTER_LINEAR), lum
    if rng.random() < 0.25:  # in-camera sharpening (halos)
        amount = rng.uniform(0.3, 1.2)
        blurred = cv2.GaussianBlur(lum, (0, 0), rng.uniform(1, 2.5), dst=tmp)
        lum, tmp = cv2.addWeighted(lum, 1 + amount, blurred, -amount, 0, dst=tmp), lum
    # Sensor noise: read noise plus shot noise (grows with the signal); dimmer scenes are noisier.
    read = rng.uniform(0.003, 0.018) * (1.3 - 0.5 * face_level)
    shot = rng.uniform(0.005, 0.04)
    lum = cv2.max(lum, 0.0, dst=lum)
    sd = cv2.sqrt(lum, dst=tmp)
    sd = cv2.addWeighted(sd, shot, sd, 0.0, read, dst=sd)
    sd = cv2.multiply(_noise_crop(rng, height, width), sd, dst=sd)
    lum = cv2.add(lum, sd, dst=lum)
    img8 = cv2.convertScaleAbs(cv2.max(lum, 0.0, dst=lum), dst=_buffer("u8", shape, np.uint8), alpha=255.0)
    # Response curve: gamma and black level in one LUT.
    gamma, black = rng.uniform(0.75, 1.3), rng.uniform(0, 14)
    curve = black + (255 - black) * np.power(np.arange(256) / 255.0, gamma)
    img8 = cv2.LUT(img8, np.clip(np.round(curve), 0, 255).astype(np.uint8), dst=_buffer("u8b", shape, np.uint8))
    colour = rng.random() >= 1.0 - colour_p
    if colour:  # low-saturation colour camera: chroma from the low-res tint map
        tint = 1.0 + np.float32(rng.uniform(*saturation)) * (tint - 1.0)
        tint *= (1.0 + rng.normal(0, 0.035, 3)).astype(np.float32)  # white balance
        lh, lw = tint.shape[:2]  # blotchy chroma noise
        tint += _noise_crop(rng, lh, lw * 3).reshape(lh, lw, 3) * np.float32(rng.uniform(0.0, 0.05))
        tint8 = cv2.convertScaleAbs(cv2.GaussianBlur(tint, (0, 0), 1.0), alpha=128.0)
        tint8 = cv2.resize(tint8, (width, height), dst=_buffer("u8x3", shape + (3,), np.uint8),
                           interpolation=cv2.INTER_LINEAR)
        gray3 = cv2.cvtColor(img8, cv2.COLOR_GRAY2BGR, dst=_buffer("u8x3b", shape + (3,), np.uint8))
        bgr = cv2.multiply(gray3, tint8, scale=1 / 128)
    if rng.random() < 0.45:
        params = [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(35, 95))]
        if colour:
            bgr = cv2.imdecode(cv2.imencode(".jpg", bgr, params)[1], cv2.IMREAD_COLOR)
        else:
            img8 = cv2.imdecode(cv2.imencode(".jpg", img8, params)[1], cv2.IMREAD_GRAYSCALE)
    # a grayscale camera gives three equal channels
    return bgr if colour else cv2.cvtColor(img8, cv2.COLOR_GRAY2BGR)


# --------------------------------------------------------------------------- light rooms and table-level views


def _background_light(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """A light top-down background: white or light-grey table, paper sheets, light wood; the
    faces barely stand out from it."""
    lw, lh = width // _LOW, height // _LOW
    base = rng.uniform(0.6, 0.95)
    low = np.full((lh, lw), base, np.float32)
    low *= 1.0 + rng.uniform(0.02, 0.12) * _smooth_noise(rng, lh, lw, rng.uniform(2, 6))
    wood = rng.random() < 0.25
    if wood:
        y = np.arange(lh, dtype=np.float32)[:, None]
        low *= 1.0 + 0.08 * np.sin(y * rng.uniform(0.1, 0.4) + rng.uniform(0, 6))
    shape = (height, width)
    lum = cv2.resize(low, (width, height), dst=_buffer("lum", shape), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.35, 0.35, 0.2, 0.1]))):  # paper sheets, sharp edged
        c = rng.uniform([0, 0], [width, height])
        sheet = cv2.boxPoints(((float(c[0]), float(c[1])), (rng.uniform(150, 500), rng.uniform(150, 500)),
                               rng.uniform(0, 90)))
        _paint(lum, [sheet.astype(np.float64)], float(np.clip(base * rng.uniform(0.85, 1.2), 0.5, 1.0)))
    tex = _noise_crop(rng, height, width)
    if wood:  # grain along the planks
        tex = cv2.resize(tex[: height // 8 + 1, : width // 2], (width, height), dst=_buffer("tmp", shape),
                         interpolation=cv2.INTER_LINEAR)
    weave = cv2.multiply(lum, tex, dst=_buffer("tmp2", shape), scale=rng.uniform(0.02, 0.1))
    lum = cv2.add(lum, weave, dst=lum)
    tint = np.ones((lh, lw, 3), np.float32) * (1.0 + rng.normal(0, 0.04, 3)).astype(np.float32)
    if wood:
        tint *= np.array([0.8, 0.95, 1.15], np.float32)
    return lum, tint


def _front_layout(rng: np.random.Generator, width: int, height: int, counts: Sequence[float],
                  size_range: Tuple[float, float], cut: bool) -> Tuple[List[_Cube], float]:
    """Cubes standing in a row on a table, seen from about their height: the front faces, a
    thin band of their tops (the camera is a little above them), sometimes a side. Returns the
    cubes and the y of the row's baseline (where the faces stand on the table)."""
    n = int(rng.choice([1, 2, 3, 4], p=counts))
    labels: List[Optional[str]] = [str(rng.choice(list(LABELS.values()))) for _ in range(n)]
    if n < 4 and rng.random() < 0.1:
        labels.insert(int(rng.integers(0, n + 1)), None)  # a blank or marked cube in the row
    size = rng.uniform(*size_range)
    dist = rng.uniform(5.0, 12.0)
    pitch = rng.uniform(0.05, 0.3)  # how far above the cubes the camera is: a thin top band shows
    cam_roll = math.radians(rng.normal(0, 3))
    yaw0 = rng.normal(0, 0.1)
    margin = rng.uniform(5, 40)
    for _attempt in range(4):
        cubes = []
        for i, label in enumerate(labels):
            depth = rng.normal(0, 0.06)  # a cube a little behind the others: smaller and higher
            cube = _Cube(size * (1 - depth) * rng.uniform(0.96, 1.04), cam_roll + math.radians(rng.normal(0, 2.5)),
                         pitch + rng.normal(0, 0.03), yaw0 + rng.normal(0, 0.08), dist, label)
            cube.index, cube.depth = i, depth
            cubes.append(cube)
        gaps = rng.uniform(3, 0.5 * size, len(cubes))
        widths = [c.hull[:, 0].max() - c.hull[:, 0].min() for c in cubes]
        total = sum(widths) + gaps[1:].sum()
        if cut or total <= width - 2 * margin or _attempt == 3:
            break
        size = max(size_range[0] * 0.7, size * (width - 2 * margin) / total)
    heights = max(c.hull[:, 1].max() - c.hull[:, 1].min() for c in cubes)
    lo_b = min(max(0.55 * height, heights + 0.08 * height), 0.97 * height)
    base = rng.uniform(lo_b, max(lo_b, 0.97 * height))
    x = rng.uniform(margin, max(margin, width - margin - total)) if total <= width - 2 * margin else (width - total) / 2
    slope = math.tan(cam_roll)
    for i, cube in enumerate(cubes):
        if i:
            x += gaps[i]
        xmin = cube.hull[:, 0].min()
        cx = x - xmin + cube.center[0]
        x += widths[i]
        y = base + slope * (cx - width / 2) - cube.depth * size * 0.9
        cube.move_to([cx, cube.center[1] + y - cube.front[:, 1].max()])
    if cut:
        _cut_shift(rng, cubes, width, height, ("left", "right", "bottom"))
    kept = _apply_visibility(cubes, width, height)
    if not any(c.label for c in kept):  # never a scene without a face by accident
        cube = _Cube(min(size, 0.6 * height), cam_roll, pitch, yaw0, dist, str(rng.choice(list(LABELS.values()))))
        cube.move_to([width / 2, min(base, height - 5) - cube.front[:, 1].max()])
        kept = [c for c in kept if not _overlaps(c.hull, cube.hull, 3)] + [cube]
    base = float(max(c.front[:, 1].max() for c in kept))
    return kept, base


_WALL_TINTS = np.array([[1.0, 1.0, 1.0], [0.92, 1.0, 1.08], [1.06, 1.0, 0.94], [0.95, 1.03, 0.98],
                        [1.0, 0.97, 1.05]], np.float32)


def _room(rng: np.random.Generator, width: int, height: int, edge: float,
          bright: bool) -> Tuple[np.ndarray, np.ndarray, float, bool]:
    """Albedo of a room behind a table seen from the side: a wall (window, curtains, posters,
    frames, furniture, cables) above ``edge``, the table top (wood or laminate, grain, a sheen)
    below. Returns (luminance, low-res tint, the window's side in [-1, 1], glossy table)."""
    lw, lh = width // _LOW, height // _LOW
    edge = float(np.clip(edge, 0.0, height - 1.0))
    e = int(np.clip(round(edge / _LOW), 0, lh))
    low = np.empty((lh, lw), np.float32)
    tint = np.empty((lh, lw, 3), np.float32)
    wall = rng.uniform(0.7, 0.95) if bright else rng.uniform(0.35, 0.9)
    low[:e] = (wall * (1.0 + rng.uniform(0.03, 0.15)
                       * _smooth_noise(rng, max(e, 1), lw, rng.uniform(2, 5)))[: max(e, 0)] if e > 0 else 0)
    tint[:e] = _WALL_TINTS[int(rng.integers(0, len(_WALL_TINTS)))] * (1.0 + rng.normal(0, 0.03, 3)).astype(np.float32)
    window = rng.uniform(-1, 1)
    items = []
    if e > 4:
        if rng.random() < 0.35:  # a wall corner or a door recess: one part of the wall darker
            xc = int(rng.uniform(0.1, 0.9) * lw)
            part = np.s_[:e, xc:] if rng.random() < 0.5 else np.s_[:e, :xc]
            low[part] *= rng.uniform(0.6, 0.9)
        if rng.random() < 0.35:  # a window: over-exposed glass, mullions
            wx0 = int(rng.uniform(-0.1, 0.7) * lw)
            ww = int(rng.uniform(0.2, 0.45) * lw)
            wy1 = int(e * rng.uniform(0.6, 1.0))
            low[: wy1, max(wx0, 0) : wx0 + ww] = rng.uniform(1.2, 2.0)
            tint[: wy1, max(wx0, 0) : wx0 + ww] = (0.95, 1.0, 1.0)
            if rng.random() < 0.7:
                bar = max(1, int(rng.uniform(0.5, 2)))
                xm = wx0 + ww // 2
                low[: wy1, max(xm - bar, 0) : max(xm + bar, 0)] = wall * 0.8
                ym = int(wy1 * rng.uniform(0.3, 0.6))
                low[ym : ym + bar, max(wx0, 0) : wx0 + ww] = wall * 0.8
            window = float(np.clip((wx0 + ww / 2) / lw * 2 - 1, -1, 1))
        if rng.random() < 0.4:  # curtains: vertical folds, often coloured
            cx0 = int(rng.uniform(-0.2, 0.8) * lw)
            cw = int(rng.uniform(0.15, 0.6) * lw)
            x = np.arange(max(cx0, 0), min(cx0 + cw, lw), dtype=np.float32)
            if len(x):
                period = rng.uniform(3, 9)
                folds = 1.0 + rng.uniform(0.1, 0.35) * np.sin(x * (2 * np.pi / period) + rng.uniform(0, 6)
                                                              + 0.6 * np.sin(x * 0.37))
                value = rng.uniform(0.6, 0.95) if bright else rng.uniform(0.25, 0.9)
                low[:e, max(cx0, 0) : cx0 + cw] = value * folds[None, :]
                tint[:e, max(cx0, 0) : cx0 + cw] = (1.0 + rng.normal(0, 0.15, 3)).astype(np.float32)
        for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.3, 0.35, 0.25, 0.1]))):
            items.append("poster")
        if rng.random() < 0.5:
            items.append("furniture")
        for _ in range(int(rng.choice([0, 1, 2], p=[0.55, 0.3, 0.15]))):
            items.append("cable")
    # the table top
    wood = rng.random() < 0.55
    top = ((rng.uniform(0.55, 0.85) if bright else rng.uniform(0.2, 0.6)) if wood
           else (rng.uniform(0.7, 0.95) if bright else rng.uniform(0.35, 0.9)))
    rows = np.arange(lh - e, dtype=np.float32)[:, None] / max(lh - e, 1)
    low[e:] = (top * (1.0 + rng.uniform(-0.15, 0.15) * rows)
               * (1.0 + rng.uniform(0.02, 0.1) * _smooth_noise(rng, max(lh - e, 1), lw, 3))[: lh - e])
    tint[e:] = (np.array([0.72, 0.93, 1.22], np.float32) + rng.normal(0, 0.04, 3).astype(np.float32)) if wood else \
        (1.0 + rng.normal(0, 0.04, 3)).astype(np.float32)
    glossy = rng.random() < (0.25 if wood else 0.55)
    if glossy and lh - e > 4:  # the window or lamp reflected as a soft streak across the table
        yy, xx = np.mgrid[e:lh, 0:lw].astype(np.float32)
        sy, sx = e + rng.uniform(0.05, 0.6) * (lh - e), rng.uniform(0, lw)
        low[e:] += np.float32(rng.uniform(0.1, 0.45)) * np.exp(-((xx - sx) / (lw * rng.uniform(0.1, 0.4))) ** 2
                                                               - ((yy - sy) / max(2.0, (lh - e) * 0.15)) ** 2)
    shape = (height, width)
    lum = cv2.resize(low, (width, height), dst=_buffer("lum", shape), interpolation=cv2.INTER_LINEAR)
    edge_i = int(round(edge))
    if 0 < edge_i < height:
        # the table's back edge: a shadow gap or a lit rim
        k = int(rng.integers(1, 5))
        lum[edge_i : edge_i + k] *= rng.uniform(0.4, 0.8) if rng.random() < 0.6 else rng.uniform(1.1, 1.3)
        # grain (wood: long streaks along the table; laminate: fine speckle)
        tex = _noise_crop(rng, height, width)
        if wood:
            tex = cv2.resize(tex[: height // 6 + 1, : width // 24 + 1], (width, height), dst=_buffer("tmp", shape),
                             interpolation=cv2.INTER_LINEAR)
        part = lum[edge_i:]
        part += part * tex[edge_i:] * np.float32(rng.uniform(0.1, 0.3) if wood else rng.uniform(0.02, 0.06))
        if wood and rng.random() < 0.5:  # plank seams
            for _ in range(int(rng.integers(1, 4))):
                y = int(rng.uniform(edge_i, height))
                lum[y : y + 2] *= rng.uniform(0.5, 0.8)
    for kind in items:  # sharp-edged things on the wall
        if kind == "poster":
            pw, ph = rng.uniform(50, 220), rng.uniform(60, 260)
            c = np.array([rng.uniform(0, width), rng.uniform(-0.2, 0.8) * edge])
            rect = cv2.boxPoints(((float(c[0]), float(c[1])), (pw, ph), rng.normal(0, 2))).astype(np.float64)
            frame = rng.random() < 0.5
            _paint(lum, [rect], rng.uniform(0.05, 0.5) if frame else rng.uniform(0.3, 1.0))
            inner = (rect - c) * (rng.uniform(0.8, 0.92) if frame else 1.0) + c
            value = rng.uniform(0.2, 1.0)
            if frame:
                _paint(lum, [inner], value)
            for _ in range(int(rng.integers(1, 4))):  # picture blocks, never a thin bar (it could read as a 1)
                fx = rng.uniform(0.3, 0.7)
                f = np.array([fx, min(0.9, fx * rng.uniform(0.7, 1.4))])
                o = rng.uniform(-0.3, 0.3, 2)
                block = c + (inner - c) * f + o * [pw, ph] * (1 - f)
                _paint(lum, [block], rng.uniform(0.05, 1.0))
            if rng.random() < 0.5:  # lines of small text
                for j in range(int(rng.integers(2, 7))):
                    y = c[1] + ph * (0.1 + 0.1 * j) - ph / 2
                    x0 = c[0] - pw * 0.35
                    cv2.line(lum, (int(x0 * 16), int(y * 16)),
                             (int((x0 + pw * rng.uniform(0.3, 0.7)) * 16), int(y * 16)),
                             float(value * 0.3), max(1, int(ph / 60)), cv2.LINE_8, 4)
            lo = np.maximum(((rect.min(axis=0)) / _LOW).astype(int), 0)
            hi = (rect.max(axis=0) / _LOW).astype(int) + 1
            tint[lo[1] : hi[1], lo[0] : hi[0]] = (1.0 + rng.normal(0, 0.25, 3)).astype(np.float32)
        elif kind == "furniture":  # a shelf, cabinet, monitor or chair back rising from the table's edge
            fw = rng.uniform(80, 350)
            x0 = rng.choice([rng.uniform(-fw * 0.5, 0), rng.uniform(width - fw, width - fw * 0.5),
                             rng.uniform(0, width - fw)])
            y0 = rng.uniform(-0.2, 0.8) * edge
            rect = np.array([[x0, y0], [x0 + fw, y0], [x0 + fw, edge + 2], [x0, edge + 2]])
            value = float(rng.choice([rng.uniform(0.03, 0.15), rng.uniform(0.25, 0.6)]))
            _paint(lum, [rect], value)
            if rng.random() < 0.5:  # a lighter rim or shelf board
                y_board = rng.uniform(y0, edge)
                board = np.array([[x0, y_board], [x0 + fw, y_board], [x0 + fw, y_board + rng.uniform(4, 14)],
                                  [x0, y_board + 8]])
                _paint(lum, [board], value * rng.uniform(1.5, 3.0))
            lo = np.maximum(np.array([x0, y0]) / _LOW, 0).astype(int)
            furniture_tint = np.array([0.8, 0.95, 1.2]) if rng.random() < 0.5 else 1.0 + rng.normal(0, 0.05, 3)
            tint[lo[1] : e, lo[0] : int((x0 + fw) / _LOW) + 1] = furniture_tint.astype(np.float32)
        else:  # a cable hanging down the wall or along it
            pts = [np.array([rng.uniform(0, width), rng.uniform(-20, edge * 0.5)])]
            heading = rng.uniform(0.3, 2.8)
            for _ in range(6):
                heading = float(np.clip(heading + rng.normal(0, 0.35), 0.1, 3.0))
                pts.append(pts[-1] + rng.uniform(30, 70) * np.array([math.cos(heading), math.sin(heading)]))
            curve = _catmull_rom(np.array(pts), 6)
            cv2.polylines(lum, [np.round(curve * 16).astype(np.int32)], False, float(rng.uniform(0.03, 0.3)),
                          int(rng.integers(2, 8)), cv2.LINE_8, 4)
    return lum, tint, window, glossy


def _scene_front(rng: np.random.Generator, width: int, height: int, *, bright: bool = False, cut: bool = False,
                 counts: Sequence[float] = (0.1, 0.15, 0.4, 0.35),
                 size_range: Tuple[float, float] = (90, 150)) -> Tuple[np.ndarray, List[_Cube]]:
    """A table-level view: cubes standing on a table, a room behind; colour camera mostly."""
    cubes, base = _front_layout(rng, width, height, counts, size_range, cut)
    top = min(c.hull[:, 1].min() for c in cubes)
    size = float(np.median([c.size for c in cubes]))
    edge = float(np.clip(top + rng.uniform(-0.5, 1.0) * size, 0.08 * height, min(base - 0.15 * size, 0.9 * height)))
    lum, tint, window, glossy = _room(rng, width, height, edge, bright)
    if rng.random() < 0.3:  # the arm, a pen, a hand... at a border of the table
        _border_objects(rng, lum, tint, [c.hull for c in cubes])
    lw, lh = width // _LOW, height // _LOW
    # shadows on the table: contact shadows, cast shadows away from the window, a hand's shadow
    shadow = np.zeros((lh, lw), np.float32)
    side = -np.sign(window) * rng.uniform(0.1, 0.8)
    for c in cubes:
        bl, br = c.front[3], c.front[2]
        w_ = float(np.linalg.norm(br - bl))
        back = np.array([side * w_, -rng.uniform(0.05, 0.25) * w_])
        poly = np.array([bl, br, br + back, bl + back]) / _LOW
        cv2.fillConvexPoly(shadow, np.round(poly * 16).astype(np.int32), float(rng.uniform(0.4, 0.8)), cv2.LINE_8, 4)
        cv2.ellipse(shadow, (int((bl[0] + br[0]) / 2 / _LOW * 16), int((bl[1] + br[1]) / 2 / _LOW * 16)),
                    (int(w_ * 0.55 / _LOW * 16), int(max(1.0, w_ * 0.04 / _LOW) * 16)), 0, 0, 360, 1.0, -1,
                    cv2.LINE_8, 4)
    if rng.random() < 0.25:  # a hand or arm above the table
        p0 = np.array([rng.uniform(0, lw), lh + 5.0])
        p1 = p0 + np.array([rng.normal(0, 20), -rng.uniform(15, 50)])
        cv2.fillPoly(shadow, [np.round(_capsule(p0, p1, rng.uniform(6, 14)) * 16).astype(np.int32)],
                     float(rng.uniform(0.3, 0.6)), cv2.LINE_8, 4)
    shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(0.8, 2.5))
    shade = 1.0 - np.float32(rng.uniform(0.35, 0.75)) * np.minimum(shadow, 1.0)
    e = int(edge / _LOW)
    shade[: max(e, 0)] = 1.0  # (the wall is far behind: no cube shadow on it)
    shade_full = cv2.resize(shade, (width, height), dst=_buffer("tmp", (height, width)), interpolation=cv2.INTER_LINEAR)
    lum = cv2.multiply(lum, shade_full, dst=lum)
    light_dir = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.4, 1.0)])  # mostly from above: a light top band
    light_dir /= max(np.linalg.norm(light_dir), 1e-6)
    for c in cubes:
        _render_cube(lum, rng, c, light_dir, (0.8, 1.0) if bright else None)
        cv2.fillConvexPoly(tint, np.round(c.hull / _LOW).astype(np.int32),
                           tuple(float(x) for x in 1.0 + rng.normal(0, 0.03, 3)))
    if glossy:  # the faces mirrored in the table, fading
        for c in cubes:
            yb = int(round(c.front[:, 1].max()))
            x0, x1 = max(int(c.front[:, 0].min()), 0), min(int(c.front[:, 0].max()), width)
            r = min(int(c.size * rng.uniform(0.2, 0.5)), height - yb, yb)
            if r > 2 and x1 > x0:
                alpha = (np.float32(rng.uniform(0.1, 0.3)) * np.linspace(1, 0, r, dtype=np.float32))[:, None]
                dst = lum[yb : yb + r, x0:x1]
                dst += alpha * (lum[yb - r : yb, x0:x1][::-1] - dst)
    # light: the window's side brighter, the far wall dimmer or brighter, vignetting
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    xn, yn = (xx - lw / 2) / (lw / 2), (yy - lh / 2) / (lh / 2)
    g = rng.uniform(0.0, 0.12 if bright else 0.35)
    light = 1.0 + np.float32(g * window) * xn + np.float32(rng.uniform(-0.15, 0.15)) * yn
    light *= 1.0 - np.float32(rng.uniform(0.0, 0.15 if bright else 0.45)) * (xn * xn + yn * yn) * 0.5
    face_level = rng.uniform(0.8, 1.05) if bright else rng.uniform(0.55, 1.05)
    light *= np.float32(face_level / 0.9)
    light_full = cv2.resize(light, (width, height), dst=_buffer("tmp", (height, width)), interpolation=cv2.INTER_LINEAR)
    lum = cv2.multiply(lum, light_full, dst=lum)
    bgr = _camera(rng, lum, tint, face_level, colour_p=0.85, saturation=(0.35, 1.0))
    return bgr, cubes


def _scene_topdown(rng: np.random.Generator, width: int, height: int, *, layout: Optional[dict] = None,
                   bright: bool = False) -> Tuple[np.ndarray, List[_Cube]]:
    """A top-down view (today's scenes): dark cloth or table, or a light one when ``bright``."""
    lum, tint = _background_light(rng, width, height) if bright else _background(rng, width, height)
    focal = width * rng.uniform(0.8, 1.5)
    cam = (rng.normal(0, 0.2), rng.normal(0, 0.14))  # shared camera pitch / yaw (radians)
    cubes = _layout(rng, width, height, focal, cam, **(layout or {}))
    _border_objects(rng, lum, tint, [c.hull for c in cubes])
    light, light_dir, shade = _light_map(rng, width // _LOW, height // _LOW, cubes, 0.35 if bright else 1.0)
    if shade is not None:  # cube shadows fall on the table, not on the cubes (drawn after)
        shade = cv2.resize(shade, (width, height), dst=_buffer("tmp", (height, width)), interpolation=cv2.INTER_LINEAR)
        lum = cv2.multiply(lum, shade, dst=lum)
    for cube in cubes:
        _render_cube(lum, rng, cube, light_dir, (0.8, 1.0) if bright else None)
        cv2.fillConvexPoly(tint, np.round(cube.hull / _LOW).astype(np.int32),
                           tuple(float(x) for x in 1.0 + rng.normal(0, 0.04, 3)))
    # how bright a white face ends up: mid-grey in a dim room to slightly clipped
    face_level = rng.uniform(0.3, 0.45) if rng.random() < 0.15 else rng.uniform(0.45, 1.05)
    if bright:
        face_level = rng.uniform(0.8, 1.05)
    light *= np.float32(face_level / 0.85)
    light_full = cv2.resize(light, (width, height), dst=_buffer("tmp", (height, width)), interpolation=cv2.INTER_LINEAR)
    lum = cv2.multiply(lum, light_full, dst=lum)
    return _camera(rng, lum, tint, face_level, colour_p=0.7 if bright else 0.55), cubes


def _family_scene(rng: np.random.Generator, family: str, width: int, height: int) -> Tuple[np.ndarray, List[_Cube]]:
    if family == "topdown":
        return _scene_topdown(rng, width, height)
    if family == "rotated":
        return _scene_topdown(rng, width, height, layout={"roll_max": 60.0})
    if family == "table":
        return _scene_front(rng, width, height)
    if family == "bright":
        if rng.random() < 0.55:
            return _scene_topdown(rng, width, height, bright=True)
        return _scene_front(rng, width, height, bright=True)
    if family == "closeup":
        cut = rng.random() < 0.35
        if rng.random() < 0.55:
            return _scene_topdown(rng, width, height, bright=rng.random() < 0.3,
                                  layout={"counts": (0.6, 0.4, 0.0, 0.0), "size_range": (220, 340), "cut": cut,
                                          "vertical_p": 0.0})
        return _scene_front(rng, width, height, bright=rng.random() < 0.3, cut=cut, counts=(0.65, 0.35, 0.0, 0.0),
                            size_range=(220, 330))
    if family == "cut":
        if rng.random() < 0.7:
            return _scene_topdown(rng, width, height, bright=rng.random() < 0.2, layout={"cut": True})
        return _scene_front(rng, width, height, bright=rng.random() < 0.3, cut=True)
    raise ValueError(f"unknown scene family {family!r} (one of {', '.join(FAMILIES)})")


def pick_family(rng: np.random.Generator) -> str:
    """A family drawn from :data:`MIXTURE` (one draw of ``rng``)."""
    return FAMILIES[int(rng.choice(len(FAMILIES), p=_MIXTURE_P))]


def family_of(seed: int, index: int) -> str:
    """The family of ``render_indexed(seed, index)`` (family None): cheap, renders nothing."""
    return pick_family(np.random.default_rng([int(seed), int(index)]))


def render_scene(rng: np.random.Generator, size: Optional[Tuple[int, int]] = None,
                 family: Optional[str] = None) -> Tuple[np.ndarray, List[LabeledBox]]:
    """One synthetic camera frame and the boxes of its labelled faces.

    ``size`` is (width, height), by default drawn from :data:`SIZES`; ``family`` one of
    :data:`FAMILIES`, by default drawn from :data:`MIXTURE`. Returns a BGR uint8 image (three
    equal channels for a grayscale camera) and ``LabeledBox(label, xmin, ymin, xmax, ymax)`` per
    labelled face (1-4), left to right; a face cut by the border has the box of its visible part.
    """
    if family is None:
        family = pick_family(rng)
    elif family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r} (one of {', '.join(FAMILIES)})")
    if size is None:
        size = SIZES[int(rng.integers(0, len(SIZES)))]
    width, height = int(size[0]), int(size[1])
    bgr, cubes = _family_scene(rng, family, width, height)
    boxes = []
    for cube in cubes:
        if cube.label is None:
            continue
        box = _face_box(cube.front, width, height)
        if box is not None:
            boxes.append(LabeledBox(cube.label, *box))
    boxes.sort(key=lambda b: (b.xmin, b.ymin))
    return bgr, boxes


def render_indexed(seed: int, index: int, size: Optional[Tuple[int, int]] = None,
                   family: Optional[str] = None) -> Tuple[np.ndarray, List[LabeledBox]]:
    """Image ``index`` of ``seed``: a function of (seed, index, family) only. With no family,
    the family is drawn from :data:`MIXTURE` (see :func:`family_of`)."""
    if family is None:
        return render_scene(np.random.default_rng([int(seed), int(index)]), size)
    if family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r} (one of {', '.join(FAMILIES)})")
    return render_scene(np.random.default_rng([int(seed), int(index), FAMILIES.index(family) + 1]), size, family)


def _render_task(task: Tuple[int, int, Optional[str]]) -> Tuple[np.ndarray, List[LabeledBox]]:
    seed, index, family = task
    return render_indexed(seed, index, family=family)


def init_worker() -> None:
    """Pool initializer for rendering processes: one OpenCV thread each (no oversubscription)."""
    cv2.setNumThreads(1)


# --------------------------------------------------------------------------- data set


def write_dataset(out_dir: os.PathLike, count: int, seed: int, test_share: float = 0.1, workers: int = 1,
                  progress: bool = True, family: Optional[str] = None) -> SaveSummary:
    """Render scenes ``0 .. count-1`` of ``seed`` (of ``family``, default the mixture; in
    ``workers`` processes) and save them with :class:`~cube_detect.dataset.DatasetWriter`, the
    writer capture uses: same names, split rule and root files. Scene ``i`` of a new data set
    is ``imageNNN`` with NNN = i + 1."""
    if count < 0:
        raise CubeDetectError(f"--count must be >= 0, got {count}")
    if not 0.0 <= test_share < 1.0:
        raise CubeDetectError(f"--test-share must be in [0, 1), got {test_share}")
    if family is not None and family not in FAMILIES:
        raise CubeDetectError(f"--family {family}: not one of {', '.join(FAMILIES)}")
    writer = DatasetWriter(out_dir, test_share)
    tasks = [(seed, i, family) for i in range(count)]
    with tqdm(total=count, desc="synth", unit="img", disable=not progress) as bar:
        if workers <= 1:
            scenes: Iterable[Tuple[np.ndarray, List[LabeledBox]]] = map(_render_task, tasks)
            for image, boxes in scenes:
                writer.save(image, boxes)
                bar.update(1)
        else:
            # spawn, not fork: pip's OpenCV deadlocks in a forked child once the parent has used it.
            with multiprocessing.get_context("spawn").Pool(workers, initializer=init_worker) as pool:
                for image, boxes in pool.imap(_render_task, tasks, chunksize=4):
                    writer.save(image, boxes)
                    bar.update(1)
    return writer.summary


# --------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output data set directory (train/, test/, label files)")
    parser.add_argument("--count", type=int, required=True, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="image i of seed s is always the same (default 0)")
    parser.add_argument("--test-share", type=float, default=0.1, help="share of images in test/ (default 0.1)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--family", choices=FAMILIES, help="scenes of one family only (default: the training mixture)")


def run(args: argparse.Namespace) -> int:
    summary = write_dataset(args.out, args.count, args.seed, args.test_share, args.workers, family=args.family)
    print(f"{summary.line('labelled')}; written to {Path(args.out)}")
    return 0
