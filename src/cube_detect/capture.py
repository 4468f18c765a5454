"""Capture: camera frames -> a labelImg data set (``<dataset>/train`` and ``<dataset>/test``).

ROS-free; ``cube_detect.ros.capture_node`` wires it to ``/get_image`` and its triggers.
Files are written by :class:`cube_detect.dataset_writer.DatasetWriter` (numbering, split, never
overwrite, never half-written: see there); this module adds what capturing needs:

- Pre-annotation: the detector's faces become a labelImg VOC XML beside the image, so the user
  only corrects boxes. Without a detector no XML is written (labelImg then shows the image as
  not yet annotated, instead of claiming it has no faces).
- Images are saved losslessly exactly as decoded from the camera: HxWx3 BGR; a grayscale
  camera's image is saved with three equal channels (``images.imgmsg_to_bgr``), depth 3.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

import numpy as np

from cube_detect.boxes import BBox
from cube_detect.dataset_writer import DatasetWriter, SavedImage, SaveSummary
from cube_detect.errors import CubeDetectError, ImageError
from cube_detect.images import imgmsg_to_bgr
from cube_detect.labels import LABELS
from cube_detect.voc import LabeledBox

log = logging.getLogger(__name__)


def annotation_boxes(detections: Iterable, width: int, height: int,
                     labels: Optional[Dict[int, str]] = None) -> List[LabeledBox]:
    """Detections (``label``, ``box`` in float pixels) -> labelImg integer boxes inside the image.

    Corners are rounded and clamped to the image; a box left empty by that is dropped (labelImg
    and ``voc.read_voc`` refuse it); a label that is not a known class name is replaced by
    the name of its ``class_id`` when that one is known, else the face is dropped. ``labels``:
    the model's classes (default: the digits). The detector's score goes along (``<score>`` in
    the XML, ignored by labelImg).
    """
    labels = LABELS if labels is None else labels
    names = set(labels.values())
    boxes = []
    for det in detections:
        label = det.label if det.label in names else labels.get(getattr(det, "class_id", None) or 0)
        if label is None:
            log.warning("pre-annotation: skipping a face with unknown class %r", det.label)
            continue
        xmin, ymin, xmax, ymax = (int(round(v)) for v in BBox(*det.box).clip(width, height))
        if xmin < xmax and ymin < ymax:
            score = getattr(det, "score", None)  # kept in the XML for the review page's "lowest score first"
            boxes.append(LabeledBox(label, xmin, ymin, xmax, ymax, None if score is None else round(float(score), 3)))
    return boxes


@dataclass(frozen=True)
class CaptureResult:
    ok: bool
    message: str  # the saved image's path, or why nothing was saved
    saved: Optional[SavedImage] = None
    detail: str = ""  # for the log: what was pre-annotated

    def log_line(self) -> str:
        return f"saved {self.message}{self.detail}" if self.ok else self.message


class CaptureSession:
    """One camera message -> one saved (and pre-annotated) image, or a one-line reason why not.

    ``frame = images.imgmsg_to_bgr(msg)`` (any sensor_msgs/Image-like object), then
    ``detector.detect(frame)`` when a detector is given, then ``writer.save``. Never raises for
    a bad frame, a failing detector or a full disk: the node keeps going.
    """

    def __init__(self, writer: DatasetWriter, detector=None):
        self.writer = writer
        self.detector = detector
        self._lock = threading.Lock()

    @property
    def summary(self) -> SaveSummary:
        return self.writer.summary

    def fail(self, reason: str) -> CaptureResult:
        """Count a capture that saved nothing (e.g. the camera service failed)."""
        with self._lock:
            self.writer.summary.failed += 1
        return CaptureResult(False, reason)

    def capture_message(self, msg) -> CaptureResult:
        try:
            frame = imgmsg_to_bgr(msg)
        except ImageError as exc:
            return self.fail(f"nothing saved: {exc}")
        return self.capture_frame(frame)

    def capture_frame(self, frame: np.ndarray) -> CaptureResult:
        detections = None
        note = ""
        if self.detector is not None:
            try:
                detections = self.detector.detect(frame)
            except Exception as exc:  # one bad frame must not stop capturing
                note = f" (not pre-annotated: detection failed: {exc})"
                log.warning("detection failed, saving without annotation: %s", exc)
        try:
            labels = getattr(getattr(self.detector, "spec", None), "labels", None)
            boxes = None if detections is None else annotation_boxes(detections, frame.shape[1], frame.shape[0], labels)
            saved = self.writer.save(frame, boxes)
        except (CubeDetectError, OSError) as exc:
            return self.fail(f"nothing saved: {exc}")
        if saved.xml_path is not None:
            faces = ", ".join(b.label for b in saved.boxes) or "no faces"
            note = f" (pre-annotated: {faces})"
        elif detections is not None and not note:
            note = " (not pre-annotated: an XML for it already existed)"
        return CaptureResult(True, str(saved.image_path), saved, note)
