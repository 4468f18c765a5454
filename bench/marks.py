#!/usr/bin/env python3
"""How much of a family's misreading is the unlabelled cubes' marks.

python -m bench.marks [--model M] [--family handwriting] [--count 1500] [--json bench/marks.json]
    -> one line per reading on stdout and bench/marks.json (run by hand, like `make bench`;
       about 30 seconds for 1500 scenes here)

The robustness suite's scenes (``robustness``'s seed) are read as rendered, then rendered again
with the marks of the unlabelled faces left out: each mark is drawn on a scratch copy of its face,
so every random draw of the scene is the same and nothing else changes (the boxes, the other
faces, the light, the camera). The difference in exact sequences at the model's default
threshold is what those marks cost. Each kind of mark is also left out alone: the generator's
letters and symbols, hand-written digits (0, 3-6, 8 and 9: :data:`~cube_detect.synth.handwriting.DISTRACTOR_DIGITS`)
and drawn marks (crosses, rings, scribbles, dashes, dots).

What it cannot tell: whether a person would read a mark as a digit (a dash on a face turned by
45 degrees or more can look like a bare 1 turned), and what real cells put on their unlabelled cubes.
"""

from __future__ import annotations

import argparse
import collections
import json
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Counter, Dict, Iterator, List, Sequence, Tuple
from unittest import mock

import numpy as np

from bench import report

ROOT = Path(__file__).resolve().parent.parent
#: The kinds of mark on an unlabelled face, by the function that inks them.
KINDS = {"text": "letters and symbols", "digit": "hand-written digits", "drawn": "drawn marks"}


@contextmanager
def marks_left_out(kinds: Sequence[str], seen: Counter) -> Iterator[None]:
    """Render scenes inside this block with the unlabelled faces' marks of ``kinds`` not inked;
    ``seen`` counts every unlabelled face's kind (``blank``: no mark)."""
    from cube_detect.synth import handwriting, strokes

    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kind of mark {sorted(unknown)} (one of {', '.join(KINDS)})")
    real_digit = strokes._draw_digit
    inked: List[str] = []

    def noting(kind, real):
        def draw(*args, **kwargs):
            inked.append(kind)
            return real(*args, **kwargs)
        return draw

    def draw_digit(canvas, rng, label, size, ink):
        if label is not None:
            return real_digit(canvas, rng, label, size, ink)
        state = rng.bit_generator.state
        inked.clear()
        real_digit(canvas.copy(), rng, label, size, ink)  # which mark, and the random draws it takes
        kind = inked[0] if inked else "blank"
        seen[kind] += 1
        if kind not in kinds:
            rng.bit_generator.state = state
            real_digit(canvas, rng, label, size, ink)

    with mock.patch.object(strokes, "_draw_text", noting("text", strokes._draw_text)), \
            mock.patch.object(strokes, "_draw_strokes", noting("drawn", strokes._draw_strokes)), \
            mock.patch.object(handwriting, "draw_glyph", noting("digit", handwriting.draw_glyph)), \
            mock.patch.object(strokes, "_draw_digit", draw_digit):
        yield


def render(index: int, family: str, kinds: Sequence[str] = ()) -> Tuple[np.ndarray, list, Counter]:
    """Scene ``index`` of the robustness suite's ``family`` with the marks of ``kinds`` left out:
    (image, its labelled boxes, the kinds of its unlabelled faces)."""
    from cube_detect.evaluate import ROBUSTNESS_SEED
    from cube_detect.synth import render_indexed

    seen: Counter = collections.Counter()
    with marks_left_out(kinds, seen):
        image, boxes = render_indexed(ROBUSTNESS_SEED, index, family=family)
    return image, boxes, seen


def _unlabelled_reads(truth, found, threshold: float) -> int:
    """Detections at ``threshold`` that lie on no labelled face (IoU < 0.5 with every one; a box
    badly placed on a labelled face counts too; one on a difficult face does not)."""
    return sum(all(d.box.iou(face[1]) < 0.5 for face in faces) for faces, dets in zip(truth, found)
               for d in dets if d.score >= threshold)


def measure(model: Path, family: str, count: int) -> Dict[str, Any]:
    """The family's exact sequences as rendered, with every mark left out and with each kind left out."""
    from cube_detect.evaluate import ROBUSTNESS_SEED
    from cube_detect.inference import DecodeSettings, load_detector
    from cube_detect.metrics import ground_truth_of, sequence_accuracy

    detector = load_detector(model, backend="cpu", decoding=DecodeSettings(max_cubes=10))  # as `robustness`
    ids = {name: i for i, name in detector.spec.labels.items()}
    threshold = detector.threshold
    truth, found, kinds_of = [], [], []
    marks: Counter = collections.Counter()
    for i in range(count):
        image, boxes, seen = render(i, family)
        truth.append(ground_truth_of(boxes, ids))
        found.append(detector.detect(image, threshold=0.05))
        kinds_of.append(set(seen) - {"blank"})
        marks.update(seen)
    readings = {"as rendered": (), "no marks": tuple(KINDS), **{f"no {k}": (k,) for k in KINDS}}
    result: Dict[str, Any] = {"seed": ROBUSTNESS_SEED, "threshold": threshold,
                              "unlabelled_faces": dict(sorted(marks.items())), "readings": {}}
    read_again: Dict[Tuple[int, frozenset], list] = {}  # (scene, the marks it loses): its detections
    for name, kinds in readings.items():
        again = list(found)
        rerendered = 0
        for i, present in enumerate(kinds_of):
            lost = frozenset(present & set(kinds))
            if lost:  # a scene holding none of these marks renders the same
                if (i, lost) not in read_again:  # "no marks" and "no text" are one scene when text is all it holds
                    read_again[i, lost] = detector.detect(render(i, family, tuple(lost))[0], threshold=0.05)
                again[i] = read_again[i, lost]
                rerendered += 1
        result["readings"][name] = {"exact": round(100 * sequence_accuracy(truth, again, threshold), 1),
                                    "unlabelled_read": _unlabelled_reads(truth, again, threshold),
                                    "scenes_rerendered": rerendered}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cube_detect.tflite")
    parser.add_argument("--family", default="handwriting", help="the robustness family (default handwriting)")
    parser.add_argument("--count", type=int, default=1500, help="scenes (default 1500)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "marks.json",
                        help="the figures (default bench/marks.json)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    from cube_detect.files import atomic_write_text
    from cube_detect.synth import EVALUATION_FAMILIES

    if args.family not in EVALUATION_FAMILIES:
        parser.error(f"--family {args.family}: not a robustness family (one of {', '.join(EVALUATION_FAMILIES)})")
    if not args.model.is_file():
        parser.error(f"--model {args.model}: model file not found")

    model = args.model.resolve()
    started = time.time()
    result = {"command": shlex.join(["python", "-m", "bench.marks", *argv]),
              **report.model_fields(model),
              "family": args.family, "count": args.count, **measure(model, args.family, args.count)}
    result["wall_s"] = round(time.time() - started)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(f"{args.family}, {args.count} scenes, threshold {result['threshold']:.2f}; unlabelled faces: "
          + ", ".join(f"{n} {k}" for k, n in result["unlabelled_faces"].items()))
    for name, r in result["readings"].items():
        print(f"  {name:12s} exact {r['exact']:5.1f} %, detections on no labelled face {r['unlabelled_read']}")
    print(f"figures in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
