"""Annotated images: boxes, labels and scores drawn on a BGR image (OpenCV only)."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

# BGR colours per class id: one = orange, two = blue (readable on grey and colour frames).
COLOURS = {1: (0, 140, 255), 2: (255, 120, 0)}
TRUTH_COLOUR = (0, 200, 0)


def draw_detections(image: np.ndarray, detections: Iterable, truth: Optional[Sequence] = None) -> np.ndarray:
    """A copy of ``image`` (gray or BGR) with each detection's box, rank, label and score.

    ``truth``: optional (label, (x1, y1, x2, y2)) pairs drawn thin in green underneath.
    """
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3].copy()
    scale = max(out.shape[0] / 480.0, 0.5)
    for label, (x1, y1, x2, y2) in truth or []:
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), TRUTH_COLOUR, 1, cv2.LINE_AA)
    for rank, det in enumerate(detections, start=1):
        x1, y1, x2, y2 = (int(round(v)) for v in det.box)
        colour = COLOURS.get(det.class_id, (0, 255, 255))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, max(2, int(2 * scale)), cv2.LINE_AA)
        text = f"{rank}: {det.label} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, 2)
        top = max(y1 - th - base - 4, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw + 6, top + th + base + 4), colour, -1)
        cv2.putText(out, text, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    (255, 255, 255), 2, cv2.LINE_AA)
    return out
