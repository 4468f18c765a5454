"""Detection metrics with pycocotools (COCO's reference implementation), plus the two
figures this product cares about: one<->two confusions and exact left-to-right sequences.

Inputs are plain lists per image, so training (float Keras outputs) and evaluation (TFLite
outputs) share one implementation:
  ground truth: [(class_id, (x1, y1, x2, y2)), ...]
  detections:   [(class_id, score, (x1, y1, x2, y2)), ...]
"""

from __future__ import annotations

import contextlib
import io
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

GroundTruth = Sequence[Tuple[int, Tuple[float, float, float, float]]]
Detections = Sequence[Tuple[int, float, Tuple[float, float, float, float]]]


def _box_iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def coco_evaluate(ground_truth: Sequence[GroundTruth], detections: Sequence[Detections],
                  labels: Mapping[int, str]):
    """Run COCOeval (bbox) quietly; returns the evaluated ``COCOeval`` object or None if no GT."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for image_id, (gts, dets) in enumerate(zip(ground_truth, detections), start=1):
        images.append({"id": image_id, "width": 1, "height": 1})
        for cid, (x1, y1, x2, y2) in gts:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cid),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": 0})
        for cid, score, (x1, y1, x2, y2) in dets:
            results.append({"image_id": image_id, "category_id": int(cid), "score": float(score),
                            "bbox": [x1, y1, x2 - x1, y2 - y1]})
    if not annotations:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": k, "name": v} for k, v in labels.items()]}
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        if not results:
            dt.dataset = {"images": images, "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
    return ev


def _ap(ev, iou: float, class_index=None) -> float:
    """Mean of the 101-point interpolated precision at one IoU (area 'all', 100 dets)."""
    t = int(np.argmin(np.abs(ev.params.iouThrs - iou)))
    precision = ev.eval["precision"][t, :, :, 0, -1]  # [recall, class]
    if class_index is not None:
        precision = precision[:, class_index]
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else 0.0


def pr_curves(ev, iou: float = 0.5) -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
    """class_id -> (recall, precision) at ``iou``, for plotting."""
    t = int(np.argmin(np.abs(ev.params.iouThrs - iou)))
    out = {}
    for k, cid in enumerate(ev.params.catIds):
        precision = ev.eval["precision"][t, :, k, 0, -1]
        out[cid] = (ev.params.recThrs, np.where(precision < 0, np.nan, precision))
    return out


def confusions(ground_truth, detections, labels: Mapping[int, str], iou: float = 0.5,
               threshold: float = 0.5) -> Dict[str, int]:
    """Detections above ``threshold`` matched to a face of the OTHER class (IoU >= iou)."""
    counts = {f"{labels[a]}->{labels[b]}": 0 for a in labels for b in labels if a != b}
    for gts, dets in zip(ground_truth, detections):
        for cid, score, box in dets:
            if score < threshold:
                continue
            best = max(gts, key=lambda g: _box_iou(g[1], box), default=None)
            if best is not None and _box_iou(best[1], box) >= iou and best[0] != cid:
                counts[f"{labels[best[0]]}->{labels[cid]}"] += 1
    return counts


def row_axis(boxes) -> int:
    """0 (x) when the faces spread more horizontally than vertically, else 1 (y): the axis a
    user sets as the detector's sort axis for that camera mounting."""
    if len(boxes) < 2:
        return 0
    centres = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in boxes])
    spread = centres.max(axis=0) - centres.min(axis=0)
    return int(spread[1] > spread[0])


def sequence_accuracy(ground_truth, detections, threshold: float = 0.5) -> float:
    """Share of images whose sorted label sequence (detections >= threshold) is exactly right.

    Faces are sorted along the row's axis (x for a row, y for a column, see ``row_axis``),
    as the detector node does with its ``sort_axis`` parameter.
    """
    if not ground_truth:
        return 0.0
    right = 0
    for gts, dets in zip(ground_truth, detections):
        axis = row_axis([b for _, b in gts])
        truth = [c for c, b in sorted(gts, key=lambda g: g[1][axis] + g[1][axis + 2])]
        found = [c for c, s, b in sorted((d for d in dets if d[1] >= threshold),
                                         key=lambda d: d[2][axis] + d[2][axis + 2])]
        right += truth == found
    return right / len(ground_truth)


def summarize(ground_truth, detections, labels: Mapping[int, str], threshold: float = 0.5) -> dict:
    """mAP50, mAP75, mAP (0.5:0.95), AP50 per class, confusions, sequence accuracy."""
    ev = coco_evaluate(ground_truth, detections, labels)
    result = {"images": len(ground_truth), "faces": int(sum(len(g) for g in ground_truth))}
    if ev is None:
        result.update({"mAP50": 0.0, "mAP75": 0.0, "mAP": 0.0, "AP50_per_class": {}})
    else:
        result.update({
            "mAP50": _ap(ev, 0.5), "mAP75": _ap(ev, 0.75), "mAP": float(np.mean(
                [_ap(ev, t) for t in ev.params.iouThrs])),
            "AP50_per_class": {labels[cid]: _ap(ev, 0.5, k) for k, cid in enumerate(ev.params.catIds)},
        })
    result["confusions"] = confusions(ground_truth, detections, labels, threshold=threshold)
    result["sequence_accuracy"] = sequence_accuracy(ground_truth, detections, threshold)
    result["_coco"] = ev
    return result
