"""Annotated images: boxes, arm order, labels and scores drawn on a copy (OpenCV only).

Used by the detector node's ``~image_annotated`` topic, ``detect --annotate`` and
``evaluate --plots``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from cube_detect.metrics import is_difficult

#: Box colour (BGR) per class id; other ids get white.
CLASS_COLOURS = {1: (0, 200, 0), 2: (0, 140, 255)}
#: Colours of further classes (any label map): BGR, distinct from each other and from the truth's cyan.
PALETTE = ((255, 80, 80), (200, 0, 200), (0, 220, 220), (80, 80, 255), (160, 160, 160), (0, 100, 0))
TRUTH_COLOUR = (255, 255, 0)


def _dashed_rectangle(out: np.ndarray, corner: tuple, opposite: tuple, colour: tuple, dash: int = 6) -> None:
    """A one-pixel rectangle of ``dash``-pixel dashes and gaps (OpenCV draws solid lines only)."""
    (x1, y1), (x2, y2) = corner, opposite
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
        for start in range(0, length + 1, 2 * dash):
            p, q = ((a[0] + (b[0] - a[0]) * t // length, a[1] + (b[1] - a[1]) * t // length)
                    for t in (start, min(start + dash - 1, length)))
            cv2.line(out, p, q, colour, 1)


def draw_detections(image: np.ndarray, detections: Sequence, truth: Optional[Sequence] = None) -> np.ndarray:
    """A copy of ``image`` (gray or BGR) with each detection's box and "N: label score".

    ``detections`` are objects with ``label``, ``class_id``, ``score`` and ``box`` (xmin, ymin,
    xmax, ymax in pixels), in the order the arm takes them (N). ``truth``: optional
    (label, box[, difficult]) drawn thin in cyan underneath, for evaluation pictures; a
    ``difficult`` face (counted neither way) dashed, as the review page draws it.
    """
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3].copy()
    height, width = out.shape[:2]
    thickness = max(2, round(min(width, height) / 240))
    font_scale = max(0.5, min(width, height) / 800)
    for face in truth or []:
        x1, y1, x2, y2 = (int(round(float(v))) for v in face[1])
        if is_difficult(face):
            _dashed_rectangle(out, (x1, y1), (x2, y2), TRUTH_COLOUR)
        else:
            cv2.rectangle(out, (x1, y1), (x2, y2), TRUTH_COLOUR, 1)
    for order, det in enumerate(detections, start=1):
        cid = int(det.class_id)
        colour = CLASS_COLOURS.get(cid, PALETTE[cid % len(PALETTE)])
        x1, y1, x2, y2 = (int(round(float(v))) for v in det.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        text = f"{order}: {det.label} {float(det.score):.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        # Above the box, or inside its top edge when the box touches the image top.
        top = y1 - th - base - 4 if y1 - th - base - 4 >= 0 else min(y1 + 2, height - th - base - 4)
        left = min(max(x1, 0), max(width - tw - 4, 0))
        cv2.rectangle(out, (left, top), (left + tw + 4, top + th + base + 4), colour, cv2.FILLED)
        cv2.putText(out, text, (left + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return out
