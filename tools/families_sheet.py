#!/usr/bin/env python3
"""Contact sheet of the synthetic scene families (rows), a few examples each, boxes drawn.

    python tools/families_sheet.py [--out docs/img/families.png] [--per-family 3] [--seed 0]

Regenerates the README's docs/img/families.png (deterministic: render_indexed(seed, i, family=f)):
the six families (our generator's digits), the held-out `handwriting` family, and a last row of
training scenes (`mixed`: real hands for half the faces, camera realism).
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from cube_detect import synth

COLOURS = {"one": (60, 200, 60), "two": (40, 120, 255)}


TRAINING_ROW = "training"  # the mixture with digits="mixed", as `train` renders it


def sheet(seed: int = 0, per_family: int = 3, cell_height: int = 240,
          families=synth.EVALUATION_FAMILIES + (TRAINING_ROW,)) -> np.ndarray:
    rows = []
    label_w = 130
    for family in families:
        cells = []
        for i in range(per_family):
            if family == TRAINING_ROW:
                image, boxes = synth.render_indexed(seed, i, size=(640, 480), digits="mixed")
            else:
                image, boxes = synth.render_indexed(seed, i, size=(640, 480), family=family)
            image = image.copy()
            for b in boxes:
                cv2.rectangle(image, (b.xmin, b.ymin), (b.xmax - 1, b.ymax - 1), COLOURS[b.label], 3)
                cv2.putText(image, b.label, (b.xmin + 4, max(b.ymin + 22, 22)), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                            COLOURS[b.label], 2, cv2.LINE_AA)
            scale = cell_height / image.shape[0]
            cell_width = int(round(image.shape[1] * scale))
            cells.append(cv2.resize(image, (cell_width, cell_height), interpolation=cv2.INTER_AREA))
            cells.append(np.full((cell_height, 6, 3), 255, np.uint8))
        tag = np.full((cell_height, label_w, 3), 255, np.uint8)
        cv2.putText(tag, family, (6, cell_height // 2 + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.62, (0, 0, 0), 2, cv2.LINE_AA)
        rows.append(np.hstack([tag] + cells[:-1]))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    return np.vstack(rows[:-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img" / "families.png"))
    parser.add_argument("--per-family", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cell-height", type=int, default=240)
    rows = list(synth.EVALUATION_FAMILIES) + [TRAINING_ROW]
    parser.add_argument("--families", nargs="*", default=rows, choices=rows)
    args = parser.parse_args(argv)
    image = sheet(args.seed, args.per_family, args.cell_height, args.families)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(args.out, image):
        raise SystemExit(f"{args.out}: cannot write")
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
