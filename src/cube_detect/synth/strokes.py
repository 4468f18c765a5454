"""Digits and marks on a face: hand-written 1s and 2s as jittered spline strokes, Hershey
fonts, non-digit marks for unlabelled faces, and the face's card texture (edges, smudges)."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import cv2
import numpy as np

from cube_detect.synth.handwriting import current_source, draw_real_digit
from cube_detect.synth.noise import _catmull_rom

# Key points of the pen path in digit-height units: x right, y down, the digit spans y in
# [-0.5, 0.5]. Each stroke is a list of key points; corners split strokes.


def _strokes_one(rng: np.random.Generator, french: bool = False) -> List[np.ndarray]:
    """A 1: a stem, with or without a flag (straight, hooked, long European up-stroke, a
    short top serif) and with or without a foot. Never anything that bows right at the top
    and runs along the bottom (what makes a 2). ``french`` (training scenes only): the French
    classroom 1, a long up-stroke flag and often a long foot on both sides of the stem: what
    tells it from a 2 is the straight stem and the flag, not the base."""
    xb = rng.normal(0.0, 0.03)
    xt = xb + rng.normal(0.02, 0.04)
    bow = rng.normal(0.0, 0.025)
    stem = np.array([[xt, -0.5], [0.5 * (xt + xb) + bow, 0.0], [xb, 0.5]])
    strokes = []
    flag = rng.choice(["none", "straight", "hook", "long", "cap"],
                      p=[0.05, 0.25, 0.1, 0.6, 0.0] if french else [0.2, 0.4, 0.17, 0.13, 0.1])
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
    if rng.random() < (0.65 if french else 0.35):  # a foot: centred or mostly to the right
        half = rng.uniform(0.18, 0.4) if french else rng.uniform(0.12, 0.26)
        left = half * rng.uniform(0.6, 1.1)
        strokes.append(np.array([[xb - left, 0.5 + rng.normal(0, 0.015)],
                                 [xb + half * rng.uniform(0.8, 1.2), 0.5 + rng.normal(0, 0.015)]]))
    return strokes


def _strokes_two(rng: np.random.Generator, french: bool = False) -> List[np.ndarray]:
    """A 2: a round (or angular) top, a diagonal, and a base: straight, looped (curly),
    wavy or an open curl; the top may start with a small curl. ``french`` (training scenes
    only): mostly the looped base, the loop big or small, the tail often long and flat."""
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
    base_style = rng.choice(["straight", "loop", "wave", "curl"],
                            p=[0.15, 0.6, 0.05, 0.2] if french else [0.45, 0.3, 0.13, 0.12])
    strokes = []
    if base_style == "loop":
        ls = rng.uniform(0.6, 1.8) if french else rng.uniform(0.8, 1.3)  # loop size
        body = top + [diag_mid, [-0.14, 0.33],
                      [-0.30 - 0.04 * ls, 0.40 + 0.02 * ls], [-0.34 - 0.05 * ls, 0.30 - 0.02 * ls],
                      [-0.24, 0.25 - 0.03 * ls], [-0.14, 0.35], [-0.10, 0.46], [0.10, 0.49], [0.45, 0.45]]
        if french and rng.random() < 0.5:  # a long flat tail
            body[-1] = [rng.uniform(0.55, 0.8), 0.47 + rng.normal(0, 0.02)]
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
    if draw_real_digit(canvas, rng, label, cx, cy, height, thickness, ink):
        return  # a real person's hand (only in scenes rendered with that digit source)
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
    # Scenes rendered for training (digit source "mixed") also get the French classroom hands
    # of docs/DOMAIN.md from our stroke model; the default source draws exactly as before.
    french = current_source() == "mixed" and rng.random() < 0.5
    strokes = _strokes_one(rng, french) if label == "one" else _strokes_two(rng, french)
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


def _face_texture(rng: np.random.Generator, label: Optional[str], size: int, paper: float,
                  style: dict) -> Tuple[np.ndarray, np.ndarray]:
    """Front face albedo (uint8, size x size): card, notches/outlines, the digit; and the digit's
    ink (float32, size x size: how much darker the digit made each texel), for the cut-face rule."""
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
    card = tex.astype(np.float32)
    _draw_digit(tex, rng, label, size, ink)
    return tex, np.maximum(card - tex, 0.0)
