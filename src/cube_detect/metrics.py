"""Detection metrics with pycocotools (COCO's reference implementation), plus the two
figures this product cares about: one<->two confusions and exact left-to-right sequences.

Inputs are lists per image, so training (float Keras outputs) and evaluation (TFLite
outputs) share one implementation:
  ground truth: [(class_id, (x1, y1, x2, y2)), ...], or (class_id, box, difficult): a face
                marked VOC ``difficult`` follows VOC's rule: neither a hit nor a miss (a
                detection on it is ignored, its absence is no error)
  detections:   [Detection, ...]  (anything with ``class_id``, ``score`` and ``box``; see
                ``inference.decode``)
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from cube_detect.boxes import BBox, row_axis, sort_left_to_right

GroundTruth = Sequence[Tuple[Any, ...]]  # (class_id, box) or (class_id, box, difficult)
Detections = Sequence[Any]  # Detection-like: .class_id, .score, .box


def is_difficult(face: Tuple[Any, ...]) -> bool:
    return len(face) > 2 and bool(face[2])


def ground_truth_of(boxes: Sequence[Any], ids: Mapping[str, Any]) -> List[Tuple[Any, ...]]:
    """One image's ground truth from its VOC boxes (``voc.LabeledBox``: ``label``, ``bbox``,
    ``difficult``): ``(class id, box, difficult)`` per box, ``ids`` mapping label names to ids."""
    return [(ids[b.label], b.bbox, b.difficult) for b in boxes]


def _without_difficult(gts: GroundTruth, dets: Detections, iou: float = 0.5) -> Tuple[list, list]:
    """The faces that count, and the detections not lying on a difficult face (IoU >= ``iou``
    with one, and not closer to a face that counts): VOC's rule for the figures COCO does not give."""
    counted = [g for g in gts if not is_difficult(g)]
    hard = [g for g in gts if is_difficult(g)]
    if not hard:
        return counted, list(dets)
    kept = []
    for det in dets:
        box = BBox(*det.box)
        best_hard = max(box.iou(g[1]) for g in hard)
        best_counted = max((box.iou(g[1]) for g in counted), default=0.0)
        if best_hard >= iou and best_hard > best_counted:
            continue
        kept.append(det)
    return counted, kept


def coco_evaluate(ground_truth: Sequence[GroundTruth], detections: Sequence[Detections],
                  labels: Mapping[int, str]):
    """Run COCOeval (bbox) quietly; returns the evaluated ``COCOeval`` object or None if no GT."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images: List[dict] = []
    annotations: List[dict] = []
    results: List[dict] = []
    for image_id, (gts, dets) in enumerate(zip(ground_truth, detections), start=1):
        images.append({"id": image_id, "width": 1, "height": 1})
        for face in gts:
            cid, (x1, y1, x2, y2) = face[0], face[1]
            # COCO ignores a "crowd" face: a detection on it is neither true nor false, as VOC's difficult.
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cid),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": int(is_difficult(face))})
        for det in dets:
            x1, y1, x2, y2 = det.box
            results.append({"image_id": image_id, "category_id": int(det.class_id), "score": float(det.score),
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
        gts, dets = _without_difficult(gts, dets, iou)
        for det in dets:
            if det.score < threshold:
                continue
            box = BBox(*det.box)
            best = max(gts, key=lambda g: box.iou(g[1]), default=None)
            if best is not None and box.iou(best[1]) >= iou and best[0] != det.class_id:
                counts[f"{labels[best[0]]}->{labels[det.class_id]}"] += 1
    return counts


def sequence_accuracy(ground_truth, detections, threshold: float = 0.5) -> float:
    """Share of images whose sorted label sequence (detections >= threshold) is exactly right.

    Faces are sorted in the arm's order along the row's axis (x for a row, y for a column,
    see ``boxes.row_axis``), as the detector node does with its ``sort_axis`` parameter.
    """
    if not ground_truth:
        return 0.0
    right = 0
    for gts, dets in zip(ground_truth, detections):
        gts, dets = _without_difficult(gts, dets)
        axis = row_axis([g[1] for g in gts])
        truth = [g[0] for g in sort_left_to_right(gts, axis, box=lambda g: g[1])]
        found = [d.class_id for d in sort_left_to_right([d for d in dets if d.score >= threshold], axis)]
        right += truth == found
    return right / len(ground_truth)


def detection_f1(ground_truth, detections, threshold: float = 0.5, iou: float = 0.5) -> float:
    """F1 of the detections scoring at least ``threshold``: each matched greedily (best score
    first) to an unmatched face of the same class with IoU >= ``iou``."""
    tp = fp = fn = 0
    for gts, dets in zip(ground_truth, detections):
        gts, dets = _without_difficult(gts, dets, iou)
        free = list(gts)
        for det in sorted((d for d in dets if d.score >= threshold), key=lambda d: -d.score):
            box = BBox(*det.box)
            match = max((g for g in free if g[0] == det.class_id), key=lambda g: box.iou(g[1]), default=None)
            if match is not None and box.iou(match[1]) >= iou:
                free.remove(match)
                tp += 1
            else:
                fp += 1
        fn += len(free)
    return 2 * tp / max(2 * tp + fp + fn, 1)


def summarize(ground_truth, detections, labels: Mapping[int, str], threshold: float = 0.5) -> dict:
    """mAP50, mAP75, mAP (0.5:0.95), AP50 per class, confusions, sequence accuracy."""
    ev = coco_evaluate(ground_truth, detections, labels)
    result: Dict[str, Any] = {"images": len(ground_truth),
                              "faces": int(sum(not is_difficult(f) for g in ground_truth for f in g)),
                              "difficult": int(sum(is_difficult(f) for g in ground_truth for f in g))}
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
