"""Scene families: the two scene builders (top-down, table level) and the families as a
registry, :data:`FAMILY_SCENES`, each a small function of ``(rng, width, height)`` that picks a
builder and its options; :data:`MIXTURE` (the training shares) fixes :data:`FAMILIES` and its
order. ``render_scene`` / ``render_indexed`` are the public entry points.

Adding a family: one function decorated with ``@scene_family("name")`` and one line in
:data:`MIXTURE` (at its end: a family's position in :data:`FAMILIES` seeds its scenes, so the
existing families' scenes stay the same; the mixture's scenes change with the shares).

The top-down builder (the cells of docs/DOMAIN.md; the shipped model is judged on real photos,
so the generator aims at the real scenes' variety rather than at beauty):

- each cube is a small 3-D box projected by a pinhole camera (in-plane roll up to 45 deg,
  slight tilt and perspective, a darker or lighter top/side showing), its front face a
  white-to-grey card (box-joint notches, dashed or burnt outlines, paper texture) carrying a
  marker digit drawn as jittered spline strokes (handwriting variants) or a Hershey font;
- the box of a face is the axis-aligned bounding box of the whole front-face quad, clipped to
  the image; faces less than ``MIN_VISIBLE`` in frame are never produced;
- distractors with no box: blank or otherwise marked cubes, bright objects at the border;
- dark cloth/table backgrounds (folds, weave, gradients), dim uneven light, vignetting, soft
  shadows; grayscale or low-saturation colour cameras; blur, noise, sharpening, JPEG.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from cube_detect.errors import CubeDetectError
from cube_detect.synth.backgrounds import (
    _background,
    _background_light,
    _border_objects,
    _camera,
    _capsule,
    _light_map,
    _room,
)
from cube_detect.synth.geometry import INK_VISIBLE, _Cube, _face_box, _front_layout, _layout, _render_cube
from cube_detect.synth.handwriting import digit_source
from cube_detect.synth.noise import _LOW, _buffer
from cube_detect.synth.realism import camera_realism
from cube_detect.voc import LabeledBox

SIZES: Tuple[Tuple[int, int], ...] = ((640, 480), (752, 480))
#: The training mixture, one line per family (see the package docstring): topdown (the cells of
#: DOMAIN.md) keeps the largest share, every other family is well represented. Shares are
#: normalised when drawn. The order is FAMILIES' order, and a family's position seeds its scenes
#: (``render_indexed``): new families go at the end. (Any change of the shares changes the
#: mixture's scenes, family None, which the simulated camera and its tests' seeds use.)
MIXTURE: Dict[str, float] = {
    "topdown": 0.30,
    "table": 0.14,
    "bright": 0.14,
    "closeup": 0.14,
    "cut": 0.14,
    "rotated": 0.14,
}
FAMILIES: Tuple[str, ...] = tuple(MIXTURE)
_MIXTURE_P = np.array([MIXTURE[f] for f in FAMILIES]) / sum(MIXTURE.values())

#: A family's scene: ``scene(rng, width, height) -> (BGR uint8 image, cubes)``.
SceneFunction = Callable[[np.random.Generator, int, int], Tuple[np.ndarray, List[_Cube]]]
#: family -> its scene function, filled by :func:`scene_family`.
FAMILY_SCENES: Dict[str, SceneFunction] = {}


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


def scene_family(name: str) -> Callable[[SceneFunction], SceneFunction]:
    """Register the decorated ``scene(rng, width, height)`` as family ``name`` (a key of MIXTURE)."""
    if name not in MIXTURE:
        raise ValueError(f"scene family {name!r} has no share in MIXTURE")

    def register(scene: SceneFunction) -> SceneFunction:
        if name in FAMILY_SCENES:
            raise ValueError(f"scene family {name!r} registered twice")
        FAMILY_SCENES[name] = scene
        return scene

    return register


# Each family draws from ``rng`` in a fixed order (scenes of a seed depend on it): keep it.


@scene_family("topdown")
def _topdown(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, List[_Cube]]:
    """The dim top-down cells of docs/DOMAIN.md (see the module docstring)."""
    return _scene_topdown(rng, width, height)


@scene_family("table")
def _table(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, List[_Cube]]:
    """A camera at the cubes' height: cubes standing in a row on a table, a room behind."""
    return _scene_front(rng, width, height)


@scene_family("bright")
def _bright(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, List[_Cube]]:
    """Light backgrounds that barely contrast with the faces; top-down or table level."""
    if rng.random() < 0.55:
        return _scene_topdown(rng, width, height, bright=True)
    return _scene_front(rng, width, height, bright=True)


@scene_family("closeup")
def _closeup(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, List[_Cube]]:
    """One or two faces of 220-340 px, top-down or table level, sometimes cut by the border."""
    cut = rng.random() < 0.35
    if rng.random() < 0.55:
        return _scene_topdown(rng, width, height, bright=rng.random() < 0.3,
                              layout={"counts": (0.6, 0.4, 0.0, 0.0), "size_range": (220, 340), "cut": cut,
                                      "vertical_p": 0.0})
    return _scene_front(rng, width, height, bright=rng.random() < 0.3, cut=cut, counts=(0.65, 0.35, 0.0, 0.0),
                        size_range=(220, 330))


@scene_family("cut")
def _cut(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, List[_Cube]]:
    """The group pushed across one border (sometimes two); top-down or table level."""
    if rng.random() < 0.7:
        return _scene_topdown(rng, width, height, bright=rng.random() < 0.2, layout={"cut": True})
    return _scene_front(rng, width, height, bright=rng.random() < 0.3, cut=True)


@scene_family("rotated")
def _rotated(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, List[_Cube]]:
    """Top-down, faces turned in-plane up to +-60 deg."""
    return _scene_topdown(rng, width, height, layout={"roll_max": 60.0})


if set(FAMILY_SCENES) != set(FAMILIES):  # a share without a scene function
    raise RuntimeError(f"scene families without a function: {sorted(set(FAMILIES) - set(FAMILY_SCENES))}")


def pick_family(rng: np.random.Generator) -> str:
    """A family drawn from :data:`MIXTURE` (one draw of ``rng``)."""
    return FAMILIES[int(rng.choice(len(FAMILIES), p=_MIXTURE_P))]


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
    bgr, cubes = FAMILY_SCENES[family](rng, width, height)
    boxes = []
    for cube in cubes:
        if cube.label is None:
            continue
        box = _face_box(cube.front, width, height)
        if box is not None:  # difficult: too little of its digit in frame to read (INK_VISIBLE)
            boxes.append(LabeledBox(cube.label, *box, difficult=cube.ink_visible < INK_VISIBLE))
    boxes.sort(key=lambda b: (b.xmin, b.ymin))
    return bgr, boxes


#: The held-out evaluation family: scenes laid out as the mixture's families (drawn from
#: MIXTURE), every labelled face in a hand training never saw (see :mod:`.handwriting`). Never
#: in MIXTURE: adding it there would move every mixture scene and the rostests' seeds.
HELDOUT_FAMILY = "handwriting"
#: What the robustness suite scores: the six families (our generator's digits) and the held-out one.
EVALUATION_FAMILIES: Tuple[str, ...] = FAMILIES + (HELDOUT_FAMILY,)


def parse_families(text: str, known: Sequence[str] = FAMILIES) -> Tuple[str, ...]:
    """A ``--families A,B`` argument: the names in their order ("" = none); CubeDetectError
    naming the unknown ones and the ``known`` ones."""
    families = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in families if name not in known]
    if unknown:
        raise CubeDetectError(f"--families: unknown family {', '.join(unknown)} (known: {', '.join(known)})")
    return families


def render_indexed(seed: int, index: int, size: Optional[Tuple[int, int]] = None,
                   family: Optional[str] = None, digits: str = "generator") -> Tuple[np.ndarray, List[LabeledBox]]:
    """Image ``index`` of ``seed``: a function of (seed, index, family, digits) only. With no
    family, the family is drawn from :data:`MIXTURE` by the first draw of
    ``default_rng([seed, index])``; with one, the scene is rendered from
    ``default_rng([seed, index, FAMILIES.index(family) + 1])``. ``digits`` (see
    :data:`~.handwriting.DIGIT_SOURCES`): ``generator`` (default: byte-identical to earlier
    rounds, needs no data), ``mixed`` (training: real hands for half the faces, plus the
    camera realism of :mod:`.realism`). Family ``handwriting`` (:data:`HELDOUT_FAMILY`) is
    rendered from ``default_rng([seed, index, 101])`` with held-out hands only."""
    if family == HELDOUT_FAMILY:
        with digit_source("heldout"):
            return render_scene(np.random.default_rng([int(seed), int(index), 101]), size)
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown scene family {family!r} (one of {', '.join(EVALUATION_FAMILIES)})")
    key = [int(seed), int(index)] if family is None else [int(seed), int(index), FAMILIES.index(family) + 1]
    rng = np.random.default_rng(key)
    with digit_source(digits):
        image, boxes = render_scene(rng, size, family)
    if digits == "mixed":
        image = camera_realism(rng, image)
    return image, boxes
