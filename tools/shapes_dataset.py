#!/usr/bin/env python3
"""A custom-class data set in the course's layout, for tests and the README's "Your own objects".

The ROS4PRO course's tic-tac-toe task: a 3x3 board seen from above, each cell ``empty`` or
holding a ``cube`` (a square block) or a ``cylinder`` (a round one). Written exactly as a
student's project folder looks (what ``train``/``stats``/``evaluate`` must accept unchanged):

    PROJECT/images/train/imageNN.jpg + .xml    labelImg VOC, <path> on the student's machine
    PROJECT/images/test/...
    PROJECT/images/train_labels.csv, test_labels.csv, train.record   (ignored by us)
    PROJECT/training/PROJECT/form_detection.pbtxt   label map with non-sequential ids

    python tools/shapes_dataset.py OUT [--train 60] [--test 20] [--size 224] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

from cube_detect.files import atomic_write_text
from cube_detect.labels import format_label_map
from cube_detect.voc import Annotation, LabeledBox, write_voc

#: Ids as a student's label map may have them: not 1..n in file order.
SHAPE_LABELS: Dict[int, str] = {3: "cube", 5: "cylinder", 7: "empty"}


def render_board(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, List[LabeledBox]]:
    """One colour photo of the board and the box of every cell's content (empty cells too)."""
    wood = np.array([rng.uniform(120, 200), rng.uniform(150, 210), rng.uniform(170, 230)])
    image = np.empty((size, size, 3), np.float32)
    image[:] = wood
    image += rng.normal(0, 6, (size, size, 1)).astype(np.float32)
    margin, cell = size * rng.uniform(0.06, 0.12), 0.0
    cell = (size - 2 * margin) / 3
    for k in range(4):  # the grid
        p = int(round(margin + k * cell))
        cv2.line(image, (p, int(margin)), (p, int(size - margin)), (40, 40, 40), 2)
        cv2.line(image, (int(margin), p), (int(size - margin), p), (40, 40, 40), 2)
    boxes = []
    for row in range(3):
        for col in range(3):
            cx = margin + (col + 0.5) * cell + rng.normal(0, cell * 0.05)
            cy = margin + (row + 0.5) * cell + rng.normal(0, cell * 0.05)
            kind = str(rng.choice(["cube", "cylinder", "empty"]))
            half = cell * rng.uniform(0.28, 0.38)
            colour = tuple(float(v) for v in rng.choice([(40, 40, 200), (200, 60, 40), (40, 160, 40), (30, 180, 220)]))
            if kind == "cube":
                angle = rng.uniform(0, 90)
                corners = cv2.boxPoints(((cx, cy), (2 * half, 2 * half), angle))
                cv2.fillConvexPoly(image, np.round(corners).astype(np.int32), colour, cv2.LINE_AA)
                x0, y0 = corners.min(axis=0)
                x1, y1 = corners.max(axis=0)
            elif kind == "cylinder":
                cv2.circle(image, (int(cx), int(cy)), int(half), colour, -1, cv2.LINE_AA)
                cv2.circle(image, (int(cx), int(cy)), int(half * 0.75), tuple(c * 0.8 for c in colour), 2, cv2.LINE_AA)
                x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
            else:  # an empty cell: the box is the free square a student draws
                x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
            box = [int(np.clip(round(v), 0, size)) for v in (x0, y0, x1, y1)]
            boxes.append(LabeledBox(kind, box[0], box[1], box[2], box[3]))
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.2))
    return np.clip(image, 0, 255).astype(np.uint8), boxes


def write_shapes_dataset(project: Path, train: int = 60, test: int = 20, size: int = 224, seed: int = 0) -> Path:
    """Write the project folder (see the module docstring); returns it."""
    rng = np.random.default_rng(seed)
    name = project.name
    for split, count in (("train", train), ("test", test)):
        folder = project / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
        for i in range(count):
            image, boxes = render_board(rng, size)
            stem = f"image{i:02d}"
            cv2.imwrite(str(folder / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            write_voc(folder / f"{stem}.xml", Annotation(
                filename=f"{stem}.jpg", width=size, height=size, depth=3, boxes=boxes, folder=split,
                path=f"/home/student/tod_tf2/{name}/images/{split}/{stem}.jpg"))
            rows += [f"{stem}.jpg,{size},{size},{b.label},{b.xmin},{b.ymin},{b.xmax},{b.ymax}" for b in boxes]
        atomic_write_text(project / "images" / f"{split}_labels.csv", "\n".join(rows) + "\n")
        (project / "images" / f"{split}.record").write_bytes(b"\x00not a data set file")
    label_dir = project / "training" / name
    label_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(label_dir / "form_detection.pbtxt", "# the course's label map\n" + format_label_map(SHAPE_LABELS))
    return project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=60)
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_shapes_dataset(args.out, args.train, args.test, args.size, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
