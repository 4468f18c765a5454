"""Capture: camera frames -> a labelImg data set (``<dataset>/train`` and ``<dataset>/test``).

ROS-free; ``scripts/capture_node`` wires it to ``/get_image`` and its triggers.

- Names: ``imageNNN.png``, at least three digits (``image001`` ... ``image999``, ``image1000``).
  Numbers are shared by both splits and continue after the highest one already there (any
  ``image<N>.png/.jpg/.jpeg/.xml`` in either split), so a restart never reuses a name.
- Never overwrite, never half-written: the PNG is encoded in memory, written to a hidden
  temporary file in the target folder, flushed, then hard-linked to its final name, which fails
  if that name exists (then the next free number is taken). The XML goes the same way.
- Split: a hash of the image number, so ``image042`` always lands in the same split whatever
  ran before (about ``test_share`` of the numbers go to ``test``).
- Pre-annotation: the detector's faces become a labelImg VOC XML beside the image, so the user
  only corrects boxes. Without a detector no XML is written (labelImg then shows the image as
  not yet annotated, instead of claiming it has no faces).
- Images are saved losslessly exactly as decoded from the camera: HxWx3 BGR; a grayscale
  camera's image is saved with three equal channels (``images.imgmsg_to_bgr``), depth 3.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence

import cv2
import numpy as np

from cube_detect.dataset import SPLITS, Annotation, Box, write_voc
from cube_detect.errors import CubeDetectError, DatasetError, ImageError
from cube_detect.labels import LABELS, atomic_write_text

log = logging.getLogger(__name__)

#: Stems the numbering counts: ``image7``, ``image007``, ``Image1000`` ...
_NUMBERED = re.compile(r"^image(\d+)$", re.IGNORECASE)
#: Files whose stem takes a number: images and their annotations.
_TAKEN_SUFFIXES = (".png", ".jpg", ".jpeg", ".xml")
#: labelImg's predefined-classes file (one class name per line), written at the data set root.
CLASSES_FILE = "classes.txt"


def image_name(number: int) -> str:
    """``image001.png`` ... ``image999.png``, ``image1000.png``."""
    if number < 1:
        raise ValueError(f"image numbers start at 1, got {number}")
    return f"image{number:03d}.png"


def split_for(number: int, test_share: float) -> str:
    """``"test"`` or ``"train"`` for image ``number``: a fixed function of the number only."""
    digest = hashlib.sha256(f"cube_detect-image-{int(number)}".encode("ascii")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10000
    return "test" if bucket < round(test_share * 10000) else "train"


def numbers_in(dataset: os.PathLike) -> List[int]:
    """Numbers of every ``image<N>`` image or xml in the data set's splits, sorted."""
    found = set()
    for split in SPLITS:
        try:
            names = os.listdir(Path(dataset) / split)
        except FileNotFoundError:
            continue
        for name in names:
            stem, suffix = os.path.splitext(name)
            match = _NUMBERED.match(stem)
            if match and suffix.lower() in _TAKEN_SUFFIXES:
                found.add(int(match.group(1)))
    return sorted(found)


def annotation_boxes(detections: Iterable, width: int, height: int) -> List[Box]:
    """Detections (``label``, ``box`` in float pixels) -> labelImg integer boxes inside the image.

    Corners are rounded and clamped to the image; a box left empty by that is dropped (labelImg
    and ``dataset.read_voc`` refuse it); a label that is not a known class name is replaced by
    the name of its ``class_id`` when that one is known, else the face is dropped.
    """
    names = set(LABELS.values())
    boxes = []
    for det in detections:
        label = det.label if det.label in names else LABELS.get(getattr(det, "class_id", None))
        if label is None:
            log.warning("pre-annotation: skipping a face with unknown class %r", det.label)
            continue
        x1, y1, x2, y2 = (float(v) for v in det.box)
        xmin, xmax = (min(max(int(round(v)), 0), width) for v in (x1, x2))
        ymin, ymax = (min(max(int(round(v)), 0), height) for v in (y1, y2))
        if xmin < xmax and ymin < ymax:
            boxes.append(Box(label, xmin, ymin, xmax, ymax))
    return boxes


@dataclass(frozen=True)
class SavedImage:
    number: int
    split: str
    image_path: Path
    xml_path: Optional[Path]  # None: not pre-annotated
    boxes: List[Box]


@dataclass
class CaptureSummary:
    """What one capture session saved."""

    images: Counter = field(default_factory=Counter)  # split -> images saved
    faces: Counter = field(default_factory=Counter)  # class name -> faces pre-annotated
    annotated: int = 0  # images saved with an XML
    failed: int = 0  # captures that saved nothing (camera down, empty image, ...)

    def add(self, saved: SavedImage) -> None:
        self.images[saved.split] += 1
        if saved.xml_path is not None:
            self.annotated += 1
            self.faces.update(box.label for box in saved.boxes)

    def line(self) -> str:
        """One line, e.g. ``saved 5 images (train 4, test 1); pre-annotated 9 faces (one 5, two 4) ...``"""
        total = sum(self.images.values())
        per_split = ", ".join(f"{s} {self.images.get(s, 0)}" for s in SPLITS)
        per_class = ", ".join(f"{n} {self.faces.get(n, 0)}" for n in LABELS.values())
        text = (f"saved {total} image{'s' if total != 1 else ''} ({per_split}); "
                f"pre-annotated {sum(self.faces.values())} faces ({per_class}) in {self.annotated} XML files")
        if self.failed:
            text += f"; {self.failed} capture{'s' if self.failed != 1 else ''} failed"
        return text


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# Filesystems without hard links (FAT, some network mounts) answer one of these to os.link.
_NO_HARDLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


def _publish_exclusive(tmp: Path, final: Path) -> None:
    """Give the complete file ``tmp`` the name ``final``, failing if ``final`` exists.

    Raises FileExistsError, and leaves ``final`` untouched, when the name is taken.
    """
    try:
        os.link(tmp, final)
    except OSError as exc:
        if exc.errno == errno.EEXIST or exc.errno not in _NO_HARDLINKS:
            raise
        # No hard links here: reserve the name exclusively, then rename the complete file onto
        # the reservation. Readers may see an empty file for that instant, never a partial one.
        fd = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
        os.replace(tmp, final)


def _write_exclusive(final: Path, write_tmp: Callable[[Path], None]) -> None:
    """Write a file through ``write_tmp(tmp_path)`` and publish it as ``final`` without overwriting."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_tmp(tmp)
        _publish_exclusive(tmp, final)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def _write_bytes(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    return write


class DatasetWriter:
    """Saves captured frames into a labelImg data set; safe against other writers of the same folder.

    ``save(bgr, detections)`` picks the next free number, its split, writes the PNG and, when
    ``detections`` is not None, its pre-annotation XML. Thread-safe.
    """

    #: How many taken numbers ``save`` skips before it gives up (another writer racing ahead).
    MAX_ATTEMPTS = 1000

    def __init__(self, root: os.PathLike, test_share: float = 0.1, write_classes: bool = True):
        test_share = float(test_share)
        if not 0.0 <= test_share <= 1.0:
            raise DatasetError(f"test_share must be between 0 and 1, got {test_share}")
        self.root = Path(root).expanduser().absolute()
        self.test_share = test_share
        self.summary = CaptureSummary()
        self._lock = threading.Lock()
        self._last = 0
        try:
            for split in SPLITS:
                (self.root / split).mkdir(parents=True, exist_ok=True)
            classes = self.root / CLASSES_FILE
            if write_classes and not classes.exists():
                atomic_write_text(classes, "".join(f"{name}\n" for _, name in sorted(LABELS.items())))
        except OSError as exc:
            raise DatasetError(f"{self.root}: cannot create the data set folders: {exc}") from exc

    def split_for(self, number: int) -> str:
        return split_for(number, self.test_share)

    def next_number(self) -> int:
        """The number the next ``save`` tries first: after every one on disk or saved by us."""
        taken = numbers_in(self.root)
        return max(taken[-1] if taken else 0, self._last) + 1

    def _number_free(self, number: int) -> bool:
        stems = {f"image{number:03d}", f"image{number}"}
        for split in SPLITS:
            for stem in stems:
                for suffix in _TAKEN_SUFFIXES:
                    if (self.root / split / (stem + suffix)).exists():
                        return False
        return True

    def save(self, bgr: np.ndarray, detections: Optional[Sequence] = None) -> SavedImage:
        """Save ``bgr`` (HxWx3 or HxW uint8) as the next image; pre-annotate when ``detections`` is given."""
        if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim not in (2, 3) or bgr.size == 0:
            raise ImageError(f"cannot save {type(bgr).__name__} {getattr(bgr, 'shape', '')}: "
                             "expected a non-empty uint8 image")
        ok, encoded = cv2.imencode(".png", bgr)
        if not ok:
            raise ImageError(f"OpenCV could not encode a {bgr.shape} image as PNG")
        data = encoded.tobytes()
        height, width = bgr.shape[:2]
        depth = 1 if bgr.ndim == 2 else bgr.shape[2]
        with self._lock:
            number = self.next_number()
            for _ in range(self.MAX_ATTEMPTS):
                split = self.split_for(number)
                image_path = self.root / split / image_name(number)
                if self._number_free(number):
                    try:
                        _write_exclusive(image_path, _write_bytes(data))
                        break
                    except FileExistsError:
                        log.debug("%s appeared meanwhile: taking the next number", image_path)
                number += 1
            else:
                raise DatasetError(f"{self.root}: no free image number after {self.MAX_ATTEMPTS} attempts")
            self._last = number
            xml_path, boxes = None, []
            if detections is not None:
                boxes = annotation_boxes(detections, width, height)
                xml_path = image_path.with_suffix(".xml")
                annotation = Annotation(filename=image_path.name, width=width, height=height, depth=depth,
                                        boxes=boxes, folder=split, path=str(image_path))
                try:
                    _write_exclusive(xml_path, lambda tmp: write_voc(tmp, annotation))
                except FileExistsError:
                    # Someone else's XML for this very image: theirs wins (never overwrite).
                    log.warning("%s already exists: left as it is, not pre-annotated", xml_path)
                    xml_path, boxes = None, []
            _fsync_dir(image_path.parent)
            saved = SavedImage(number, split, image_path, xml_path, boxes)
            self.summary.add(saved)
            return saved

    def count_on_disk(self) -> dict:
        """Images per split now in the data set (any writer), e.g. ``{"train": 12, "test": 2}``."""
        counts = {}
        for split in SPLITS:
            folder = self.root / split
            counts[split] = sum(1 for p in folder.iterdir()
                                if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg")) if folder.is_dir() else 0
        return counts


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
    def summary(self) -> CaptureSummary:
        return self.writer.summary

    def fail(self, reason: str) -> CaptureResult:
        """Count a capture that saved nothing (e.g. the camera service failed)."""
        with self._lock:
            self.writer.summary.failed += 1
        return CaptureResult(False, reason)

    def frame_from_message(self, msg) -> np.ndarray:
        from cube_detect.images import imgmsg_to_bgr

        return imgmsg_to_bgr(msg)

    def capture_message(self, msg) -> CaptureResult:
        try:
            frame = self.frame_from_message(msg)
        except ImageError as exc:
            return self.fail(f"nothing saved: {exc}")
        return self.capture_frame(frame)

    def capture_frame(self, frame: np.ndarray) -> CaptureResult:
        detections = None
        note = ""
        if self.detector is not None:
            try:
                detections = self.detector.detect(frame)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop capturing
                note = f" (not pre-annotated: detection failed: {exc})"
                log.warning("detection failed, saving without annotation: %s", exc)
        try:
            saved = self.writer.save(frame, detections)
        except (CubeDetectError, OSError) as exc:
            return self.fail(f"nothing saved: {exc}")
        if saved.xml_path is not None:
            faces = ", ".join(b.label for b in saved.boxes) or "no faces"
            note = f" (pre-annotated: {faces})"
        elif detections is not None and not note:
            note = " (not pre-annotated: an XML for it already existed)"
        return CaptureResult(True, str(saved.image_path), saved, note)
