"""labelImg data sets: where the files are, the splits, the numbering and the class set.

A data set is ``<dataset>/train/`` and ``<dataset>/test/`` (or the course's
``<project>/images/{train,test}``: :func:`images_root`). Each image (``.png``, ``.jpg``,
``.jpeg``) has its labelImg ``.xml`` beside it (same stem; the format: :mod:`cube_detect.voc`).
labelImg writes no XML for an image nobody annotated, so a missing XML is an error (an image
with no faces still needs its XML, with no ``<object>``).

Every bad file raises one :class:`~cube_detect.errors.DatasetError` whose message starts with
``<file>:<line>:``; ``skip_bad=True`` logs it as a warning and goes on.

Saved images are numbered ``image001.png`` ... in one sequence shared by the splits, and a
number's split is a fixed function of it (:func:`split_for`); the one writer:
:mod:`cube_detect.dataset_writer`. The ``stats`` command: :mod:`cube_detect.stats`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from lxml import etree

from cube_detect.errors import DatasetError
from cube_detect.imageinfo import image_size
from cube_detect.labels import LABELS, describe, read_label_map, read_labels
from cube_detect.voc import Annotation, parse_voc

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
#: labelImg's predefined-classes file (one class name per line), written at the data set root.
CLASSES_FILE = "classes.txt"
#: The TF Object Detection API's label map (``item { id: 1 name: 'one' }``), also at the root.
LABEL_MAP_FILE = "label_map.pbtxt"


@dataclass(frozen=True)
class LabeledImage:
    """An image file of a split and its checked annotation (training's arrays:
    :data:`cube_detect.samples.Sample`)."""

    image_path: Path
    annotation: Annotation


# --------------------------------------------------------------------------- splits


def _check_sample(image_path: Path, xml_path: Path, known_labels: Optional[Iterable[str]] = None) -> LabeledImage:
    ann, lines = parse_voc(xml_path, known_labels)
    width, height = image_size(image_path)
    if (width, height) != (ann.width, ann.height):
        raise DatasetError(
            f"{xml_path}:{lines['size']}: <size> says {ann.width}x{ann.height} "
            f"but {image_path.name} is {width}x{height}"
        )
    return LabeledImage(image_path, ann)


def check_split(split_dir: Path, skip_bad: bool,
                known_labels: Optional[Iterable[str]] = None) -> Tuple[List[LabeledImage], List[str]]:
    """The checked images of one split, sorted by file name, and the bad files' messages (with
    ``skip_bad``; without, the first bad file raises its DatasetError)."""
    known = None if known_labels is None else list(known_labels)
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: not a directory")
    images: Dict[str, List[Path]] = {}
    xmls: Dict[str, Path] = {}
    for entry in sorted(split_dir.iterdir()):
        suffix = entry.suffix.lower()
        if suffix in IMAGE_SUFFIXES and entry.is_file():
            images.setdefault(entry.stem, []).append(entry)
        elif suffix == ".xml" and entry.is_file():
            xmls[entry.stem] = entry
    samples: List[LabeledImage] = []
    bad: List[str] = []

    def fail(message: str) -> None:
        if not skip_bad:
            raise DatasetError(message)
        log.warning("skipping: %s", message)
        bad.append(message)

    for stem in sorted(set(images) | set(xmls)):
        xml_path = xmls.get(stem)
        candidates = images.get(stem, [])
        if not candidates and xml_path is not None:
            try:
                ann, lines = parse_voc(xml_path, known)
                fail(f"{xml_path}:{lines['filename']}: missing image: neither {ann.filename!r} "
                     f"nor {stem}.png/.jpg/.jpeg is beside it")
            except DatasetError as exc:
                fail(str(exc))
            continue
        if len(candidates) > 1:
            fail(f"{candidates[0]}: several images share the stem {stem!r}: {', '.join(p.name for p in candidates)}")
            continue
        if xml_path is None:
            fail(f"{candidates[0]}: no annotation {stem}.xml (labelImg writes one per annotated image)")
            continue
        try:
            samples.append(_check_sample(candidates[0], xml_path, known))
        except DatasetError as exc:
            fail(str(exc))
    return samples, bad


def load_split(split_dir: os.PathLike, skip_bad: bool = False,
               known_labels: Optional[Iterable[str]] = None) -> List[LabeledImage]:
    """All checked samples of one split directory, sorted by file name; class names must be
    among ``known_labels`` (default: the digits, ``labels.LABELS``)."""
    return check_split(Path(split_dir), skip_bad, known_labels)[0]


# --------------------------------------------------------------------------- class sets


def images_root(root: Path) -> Path:
    """Where a data set's ``train/`` and ``test/`` are: ``root`` itself, or ``root/images`` in
    the course's project layout (``<project>/images/{train,test}``)."""
    if not root.is_dir():
        raise DatasetError(f"{root}: data set folder not found")
    for candidate in (root, root / "images"):
        if (candidate / "train").is_dir():
            return candidate
    raise DatasetError(f"{root}: no train/ folder (a data set has train/ and test/ with labelImg XML, "
                       "or images/train and images/test as in the course's layout)")


def find_label_maps(root: Path) -> List[Path]:
    """``*.pbtxt`` label maps of a data set: in its root, beside its splits, or under
    ``training/`` (the course's ``<project>/training/<project>/label_map.pbtxt``)."""
    found = set(root.glob("*.pbtxt")) | set(images_root(root).glob("*.pbtxt")) | set(root.glob("training/**/*.pbtxt"))
    return sorted(found)


def names_in(split_dirs: Iterable[Path]) -> List[str]:
    """Every ``<object><name>`` in the XML files of these folders, sorted (no other checks)."""
    names: set = set()
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    for folder in split_dirs:
        for xml_path in sorted(Path(folder).glob("*.xml")):
            try:
                root = etree.parse(str(xml_path), parser).getroot()
            except (etree.XMLSyntaxError, OSError):
                continue  # reported with file and line when the split is loaded
            names.update((obj.findtext("name") or "").strip() for obj in root.iter("object"))
    names.discard("")
    return sorted(names)


def resolve_labels(roots: Sequence[Path], labels_file: Optional[Path] = None) -> Dict[int, str]:
    """The classes of a run, from the first of: ``labels_file`` (label map, labels.txt or
    classes.txt); a ``*.pbtxt`` label map found in the data sets (different ones: an error
    naming both); the ``<name>``s in their XML files (sorted, ids from 1; logged); the digits
    when there is no data set. Data sets whose class lists differ: one error naming them."""
    if labels_file is not None:
        return read_labels(labels_file)
    found: Dict[Path, Dict[int, str]] = {}
    for root in roots:
        for path in find_label_maps(Path(root)):
            found[path] = read_label_map(path)
    distinct = {tuple(sorted(v.items())): path for path, v in found.items()}
    if len(distinct) > 1:
        (a, la), (b, lb) = [(p, found[p]) for p in list(distinct.values())[:2]]
        raise DatasetError(f"{a} ({describe(la)}) and {b} ({describe(lb)}) name different classes: "
                           "keep one, or choose with --labels FILE")
    if found:
        return next(iter(found.values()))
    if not roots:
        return dict(LABELS)
    per_root = {Path(r): names_in(images_root(Path(r)) / s for s in SPLITS) for r in roots}
    lists = {tuple(v) for v in per_root.values()}
    if len(lists) > 1:
        raise DatasetError("data sets with different classes in one run: " + "; ".join(
            f"{r}: {', '.join(v)}" for r, v in per_root.items()) + " (give --labels FILE to use one class list)")
    names = next(iter(per_root.values()))
    if not names:
        raise DatasetError(f"{', '.join(map(str, roots))}: no labelled objects and no label map: nothing to learn")
    if set(names) == set(LABELS.values()):
        return dict(LABELS)  # the digits keep their course ids (one 1, two 2)
    labels = dict(enumerate(names, start=1))
    log.info("no label map in %s: classes from the XML files, sorted: %s", ", ".join(map(str, roots)), describe(labels))
    return labels


# --------------------------------------------------------------------------- numbering

#: Stems the numbering counts: ``image7``, ``image007``, ``Image1000`` ...
_NUMBERED = re.compile(r"^image(\d+)$", re.IGNORECASE)
#: Files whose stem takes a number: images and their annotations.
TAKEN_SUFFIXES = (".png", ".jpg", ".jpeg", ".xml")


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
            if match and suffix.lower() in TAKEN_SUFFIXES:
                found.add(int(match.group(1)))
    return sorted(found)
