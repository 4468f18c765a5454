"""Cubes: the projected 3-D box (:class:`_Cube`), layouts (top-down rows, columns and
scatters; table-level rows), the cut-face rule and the label box of a face, and drawing a cube
(sides and the textured front face) into the luminance plane."""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from cube_detect.labels import LABELS
from cube_detect.synth.noise import _noise_crop, _paint
from cube_detect.synth.strokes import _face_texture

#: A face less visible than this is moved back into the frame (never drawn unlabelled).
MIN_VISIBLE = 0.6
#: The cut-face rule (every family but topdown, which keeps MIN_VISIBLE): a face at least this
#: much in frame is labelled with the box of its visible part ...
LABEL_VISIBLE = 0.35
#: ... faces between SLIVER_VISIBLE and LABEL_VISIBLE in frame are never produced, and slivers
#: under SLIVER_VISIBLE stay, unlabelled and blank.
SLIVER_VISIBLE = 0.12
#: A labelled face with less of its digit's ink than this in frame is VOC ``difficult``: its
#: digit cannot be read (a person with labelImg would not say which), so evaluation counts it
#: neither as a hit nor as a miss and training ignores its region (see render_scene).
INK_VISIBLE = 0.3


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
        self.ink_visible = 1.0  # the share of its digit's ink inside the frame, set when drawn
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


def _ink_visible(ink: Optional[np.ndarray], quad: np.ndarray, tsize: int, width: int, height: int) -> float:
    """The share of a face texture's digit ink (``ink``: per texel, how much darker the digit
    made it; None or no ink: 1.0) that lands inside a ``width`` x ``height`` frame when the
    texture is drawn onto ``quad``: the cut-face rule's INK_VISIBLE reads it. A face wholly in
    frame (most of them) is 1.0 without projecting anything."""
    if ink is None or (quad.min() >= 0 and quad[:, 0].max() < width and quad[:, 1].max() < height):
        return 1.0
    ys, xs = np.nonzero(ink)
    total = float(ink[ys, xs].sum())
    if total <= 0.0:
        return 1.0
    src = np.array([[0, 0], [tsize, 0], [tsize, tsize], [0, tsize]], np.float32)
    hom = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    texels = np.stack([xs + 0.5, ys + 0.5], axis=1).astype(np.float32)[None]
    at = cv2.perspectiveTransform(texels, hom)[0]
    inside = (at[:, 0] >= 0) & (at[:, 0] < width) & (at[:, 1] >= 0) & (at[:, 1] < height)
    return float(ink[ys[inside], xs[inside]].sum()) / total


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
    tex, ink = (_face_texture(rng, cube.label, tsize, 1.0, style) if not cube.blank
                else (np.full((tsize, tsize), 255, np.uint8), None))
    quad = cube.front
    cube.ink_visible = _ink_visible(ink if cube.label is not None else None, quad, tsize, w, h)  # read for labels
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

