"""What surrounds the cubes, and the camera: dark cloth/table backgrounds, light backgrounds,
a room behind a table (table-level views), things at the border, the light map, and the camera
model (optics, sensor noise, response curve, colour, JPEG)."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import cv2
import numpy as np

from cube_detect.synth.geometry import _Cube, _overlaps
from cube_detect.synth.noise import _LOW, _buffer, _catmull_rom, _noise_crop, _paint, _smooth_noise


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
