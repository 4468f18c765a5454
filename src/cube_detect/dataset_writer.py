"""The one writer of labelImg data sets (capture and ``synth``): :class:`DatasetWriter`.

Numbering shared by train/ and test/ that continues after what is there, never overwrites,
image and XML published as one unit (both written to temporary files, then linked:
:func:`cube_detect.files.publish_exclusive`), safe against other writers of the same folder.
The layout it writes (names, splits): :mod:`cube_detect.dataset`; the XML: :mod:`cube_detect.voc`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from cube_detect.dataset import (
    CLASSES_FILE,
    IMAGE_SUFFIXES,
    LABEL_MAP_FILE,
    SPLITS,
    TAKEN_SUFFIXES,
    image_name,
    numbers_in,
    split_for,
)
from cube_detect.errors import DatasetError, ImageError
from cube_detect.files import (
    atomic_write_text,
    file_mode,
    fsync_dir,
    publish_exclusive,
    unlink_quietly,
    write_temporary,
)
from cube_detect.labels import LABELS, format_label_map
from cube_detect.voc import Annotation, LabeledBox, format_voc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedImage:
    number: int
    split: str
    image_path: Path
    xml_path: Optional[Path]  # None: not pre-annotated
    boxes: List[LabeledBox]


@dataclass
class SaveSummary:
    """What one writer saved (a capture session, a synthetic data set)."""

    labels: Dict[int, str] = field(default_factory=lambda: dict(LABELS))  # the classes, for the line
    images: Counter = field(default_factory=Counter)  # split -> images saved
    faces: Counter = field(default_factory=Counter)  # class name -> faces pre-annotated
    difficult: int = 0  # of those faces, the ones marked difficult (synth: most of the digit out of frame)
    annotated: int = 0  # images saved with an XML
    failed: int = 0  # saves that wrote nothing (camera down, empty image, full disk, ...)

    def add(self, saved: SavedImage) -> None:
        self.images[saved.split] += 1
        if saved.xml_path is not None:
            self.annotated += 1
            self.faces.update(box.label for box in saved.boxes)
            self.difficult += sum(bool(box.difficult) for box in saved.boxes)

    def line(self, verb: str = "pre-annotated") -> str:
        """One line, e.g. ``saved 5 images (train 4, test 1); pre-annotated 9 faces (one 5, two 4) ...``
        (``... (one 5, two 4; 1 of them difficult) ...`` when some are)."""
        total = sum(self.images.values())
        per_split = ", ".join(f"{s} {self.images.get(s, 0)}" for s in SPLITS)
        per_class = ", ".join(f"{n} {self.faces.get(n, 0)}" for _, n in sorted(self.labels.items()))
        if self.difficult:
            per_class += f"; {self.difficult} of them difficult"
        text = (f"saved {total} image{'s' if total != 1 else ''} ({per_split}); "
                f"{verb} {sum(self.faces.values())} faces ({per_class}) in {self.annotated} XML files")
        if self.failed:
            text += f"; {self.failed} capture{'s' if self.failed != 1 else ''} failed"
        return text


class DatasetWriter:
    """Saves images into a labelImg data set; safe against other writers of the same folder.

    The one writer of data sets (capture and ``synth``): ``save(bgr, boxes)`` picks the next
    free number, its split (:func:`split_for`), writes the PNG and, when ``boxes`` is not None,
    its VOC XML. Thread-safe. The root gets labelImg's ``classes.txt`` and the TF OD API's
    ``label_map.pbtxt`` when they are missing.
    """

    #: How many taken numbers ``save`` skips before it gives up (another writer racing ahead).
    MAX_ATTEMPTS = 1000

    def __init__(self, root: os.PathLike, test_share: float = 0.1, write_classes: bool = True,
                 labels: Optional[Dict[int, str]] = None):
        test_share = float(test_share)
        labels = dict(LABELS if labels is None else labels)
        if not 0.0 <= test_share <= 1.0:
            raise DatasetError(f"test_share must be between 0 and 1, got {test_share}")
        self.root = Path(root).expanduser().absolute()
        self.test_share = test_share
        self.labels = labels
        self.summary = SaveSummary(labels)
        self._lock = threading.Lock()
        self._last = 0
        try:
            for split in SPLITS:
                (self.root / split).mkdir(parents=True, exist_ok=True)
            classes, label_map = self.root / CLASSES_FILE, self.root / LABEL_MAP_FILE
            if write_classes and not classes.exists():
                atomic_write_text(classes, "".join(f"{name}\n" for _, name in sorted(labels.items())))
            if write_classes and not label_map.exists():
                atomic_write_text(label_map, format_label_map(labels))
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
                for suffix in TAKEN_SUFFIXES:
                    if (self.root / split / (stem + suffix)).exists():
                        return False
        return True

    def save(self, bgr: np.ndarray, boxes: Optional[Sequence[LabeledBox]] = None) -> SavedImage:
        """Save ``bgr`` (HxWx3 or HxW uint8) as the next image, with its VOC XML when ``boxes`` is given."""
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
            mode = file_mode()
            number = self.next_number()
            for _ in range(self.MAX_ATTEMPTS):
                split = self.split_for(number)
                image_path = self.root / split / image_name(number)
                if not self._number_free(number):
                    number += 1
                    continue
                written = None if boxes is None else list(boxes)
                xml_text = None if written is None else format_voc(Annotation(
                    filename=image_path.name, width=width, height=height, depth=depth, boxes=written,
                    folder=split, path=str(image_path)))
                xml_path = self._publish(image_path, data, xml_text, mode)
                if xml_path is not False:
                    break
                log.debug("%s appeared meanwhile: taking the next number", image_path)
                number += 1
            else:
                raise DatasetError(f"{self.root}: no free image number after {self.MAX_ATTEMPTS} attempts")
            self._last = number
            if xml_path is None:
                written = None
            fsync_dir(image_path.parent)
            saved = SavedImage(number, split, image_path, xml_path, written or [])
            self.summary.add(saved)
            return saved

    def _publish(self, image_path: Path, data: bytes, xml_text: Optional[str], mode: int):
        """Image and XML as one unit: both written completely to temporary files first, then
        linked to their names. Returns the XML's path (None: no XML, or someone else's XML was
        there first), or False when the image's name was taken meanwhile. On any other error
        nothing stays behind (no image without its XML, no temporary file) and a DatasetError
        names the image."""
        xml_path = image_path.with_suffix(".xml")
        tmps: List[Path] = []
        published: List[Path] = []
        try:
            tmps.append(write_temporary(image_path.parent, image_path.stem, data, mode))
            if xml_text is not None:
                tmps.append(write_temporary(image_path.parent, image_path.stem, xml_text.encode("utf-8"), mode))
            try:
                publish_exclusive(tmps[0], image_path)
            except FileExistsError:
                return False
            published.append(image_path)
            if xml_text is None:
                return None
            try:
                publish_exclusive(tmps[1], xml_path)
            except FileExistsError:
                # Someone else's XML for this very image: theirs wins (never overwrite).
                log.warning("%s already exists: left as it is, not pre-annotated", xml_path)
                return None
            return xml_path
        except OSError as exc:
            for path in published:
                unlink_quietly(path)
            raise DatasetError(f"{image_path}: not saved, nothing written ({exc.strerror or exc})") from exc
        finally:
            for tmp in tmps:
                unlink_quietly(tmp)

    def count_on_disk(self) -> dict:
        """Images per split now in the data set (any writer), e.g. ``{"train": 12, "test": 2}``."""
        counts = {}
        for split in SPLITS:
            folder = self.root / split
            if not folder.is_dir():
                counts[split] = 0
                continue
            counts[split] = sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return counts
