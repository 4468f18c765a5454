"""The simulated robot's camera side, ROS-free: scenes with their true sorted labels.

A scene source yields ``Scene(image_bgr, labels)`` where ``labels`` are the class names of the
faces sorted along the arm's axis, i.e. what a perfect detector must report. Scenes come from
a labelImg folder (images + VOC xml) or from the synthetic generator. Every labelled face is in
``labels``, a ``difficult`` one too (a synthetic face with most of its digit out of frame): the
protocol's checks compare whole lists, so such a scene expects its face to be read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Union

import cv2
import numpy as np

from cube_detect.boxes import sort_left_to_right
from cube_detect.dataset import names_in
from cube_detect.errors import DatasetError, ImageError
from cube_detect.images import ENCODINGS, UNREADABLE_ENCODING
from cube_detect.synth import render_indexed
from cube_detect.voc import LabeledBox, read_voc


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # HxWx3 BGR uint8, as the robot's camera gives it
    labels: List[str]  # true class names, sorted left to right (or top to bottom)
    name: str = ""


def sorted_labels(boxes: Sequence[LabeledBox], axis: str = "x") -> List[str]:
    """Class names of labelled boxes in the arm's order (``boxes.sort_left_to_right``)."""
    return [b.label for b in sort_left_to_right(boxes, axis, box=lambda b: b.bbox)]


class SyntheticScenes:
    """Scene i of ``seed`` is the synthetic generator's image i: reproducible across runs."""

    def __init__(self, seed: int = 0, axis: str = "x"):
        self.seed, self.axis, self.index = int(seed), axis, 0

    def next(self) -> Scene:
        image, boxes = render_indexed(self.seed, self.index)
        scene = Scene(image, sorted_labels(boxes, self.axis), f"synthetic:{self.seed}:{self.index}")
        self.index += 1
        return scene


class FolderScenes:
    """Cycles through the images of a folder (sorted by name); truth from the VOC xml beside each.

    Any data set serves: the classes are whatever its XML files name (digits, shapes, hand
    signs); a camera does not care. An XML that cannot be read leaves that image's truth empty
    (``bad_truth`` lists why), it never stops the camera."""

    EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

    def __init__(self, folder: Union[str, os.PathLike], axis: str = "x"):
        self.folder = Path(folder)
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in self.EXTENSIONS)
        if not self.paths:
            raise ImageError(f"{self.folder}: no images ({', '.join(self.EXTENSIONS)})")
        self.axis, self.index = axis, 0
        self.known = names_in([self.folder])
        self.bad_truth: dict = {}

    def next(self) -> Scene:
        path = self.paths[self.index % len(self.paths)]
        self.index += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ImageError(f"{path}: cannot be read as an image")
        xml = path.with_suffix(".xml")
        labels: List[str] = []
        if xml.exists():
            try:
                labels = sorted_labels(read_voc(xml, self.known).boxes, self.axis)
            except DatasetError as exc:
                self.bad_truth[str(xml)] = str(exc)
        return Scene(image, labels, str(path))


def make_scene_source(images: str = "", seed: int = 0, axis: str = "x"):
    """A folder source when ``images`` names a folder, else synthetic scenes."""
    return FolderScenes(images, axis) if images else SyntheticScenes(seed, axis)


def encode_for_camera(image_bgr: np.ndarray, encoding: str) -> np.ndarray:
    """Pixel data a camera with ``encoding`` (one of ``images.ENCODINGS``) would send for this BGR
    scene (for cv2_to_imgmsg). ``UNREADABLE_ENCODING`` (mono16: a 16-bit depth-style camera) is
    one our nodes cannot read: the doctor's test case."""
    if encoding == UNREADABLE_ENCODING:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    if encoding not in ENCODINGS:
        raise ImageError(f"encoding {encoding!r} is not one of {sorted(ENCODINGS) + [UNREADABLE_ENCODING]}")
    code = ENCODINGS[encoding].from_bgr
    return image_bgr.copy() if code is None else cv2.cvtColor(image_bgr, code)
