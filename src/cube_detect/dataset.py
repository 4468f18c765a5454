"""labelImg Pascal VOC data sets: ``<dataset>/train/`` and ``<dataset>/test/``.

Each image (``.png``, ``.jpg``, ``.jpeg``) has its labelImg ``.xml`` beside it (same stem).
labelImg writes no XML for an image nobody annotated, so a missing XML is an error (an
image with no faces still needs its XML, with no ``<object>``).

Every bad file raises one :class:`~cube_detect.errors.DatasetError` whose message starts with
``<file>:<line>:``; ``skip_bad=True`` logs it as a warning and goes on.

Command ``python -m cube_detect stats DATASET [--skip-bad]`` checks a data set and counts
images and faces per split and class.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from lxml import etree

from cube_detect.boxes import BBox
from cube_detect.errors import DatasetError, ImageError
from cube_detect.files import (
    atomic_write_text,
    file_mode,
    fsync_dir,
    publish_exclusive,
    unlink_quietly,
    write_temporary,
)
from cube_detect.labels import LABELS, describe, format_label_map, read_label_map, read_labels

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class LabeledBox:
    """One VOC ``<object>``: class name and pixel box (labelImg's integer corners).

    ``score``: the pre-annotation model's score, kept as an extra ``<score>`` element at the end
    of the ``<object>`` (labelImg and the TF OD API scripts ignore it); None for a box a person
    drew or corrected. It is not part of equality: two boxes are the same face whatever the score.
    """

    label: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int
    score: Optional[float] = field(default=None, compare=False)
    #: VOC's ``<difficult>``: a face the user marked too hard to count (evaluation: neither a hit
    #: nor a miss; training: ignored, see samples.to_sample).
    difficult: bool = field(default=False, compare=False)
    #: What the file said, written back unchanged: ``<pose>``, ``<truncated>`` (None: computed
    #: by labelImg's rule, as for a new or moved box) and unknown child elements (XML text).
    pose: str = field(default="Unspecified", compare=False)
    truncated: Optional[str] = field(default=None, compare=False)
    extra: Tuple[str, ...] = field(default=(), compare=False)

    @property
    def bbox(self) -> BBox:
        return BBox(self.xmin, self.ymin, self.xmax, self.ymax)


@dataclass
class Annotation:
    """The content of one labelImg VOC file."""

    filename: str
    width: int
    height: int
    depth: int
    boxes: List[LabeledBox] = field(default_factory=list)
    folder: str = ""
    path: str = ""
    #: Reviewed by a person: labelImg's ``verified="yes"`` attribute on ``<annotation>``.
    verified: bool = False
    #: Kept as read, written back unchanged: ``<source>`` (the whole element, XML text; "" = labelImg's
    #: ``<database>Unknown</database>``), ``<segmented>``, unknown elements of ``<annotation>``
    #: (XML text, in order) and its attributes as read (``verified`` is written from the field).
    #: (Not part of equality: two annotations are the same faces whatever the file's extras.)
    source: str = field(default="", compare=False)
    segmented: str = field(default="0", compare=False)
    extra: Tuple[str, ...] = field(default=(), compare=False)
    attributes: Tuple[Tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Sample:
    image_path: Path
    annotation: Annotation


# --------------------------------------------------------------------------- reading


def _text(parent: etree._Element, tag: str, xml_path: Path) -> Tuple[str, int]:
    """Text of the required child ``tag`` and its line (errors name the parent's line)."""
    child = parent.find(tag)
    if child is None:
        raise DatasetError(f"{xml_path}:{parent.sourceline}: <{parent.tag}> has no <{tag}>")
    return (child.text or "").strip(), child.sourceline or parent.sourceline


def _int(parent: etree._Element, tag: str, xml_path: Path) -> Tuple[int, int]:
    text, line = _text(parent, tag, xml_path)
    try:
        # labelImg itself reads int(float(text)); some tools write "12.0".
        value = float(text)
        if value != value or abs(value) > 1e9:
            raise ValueError(text)
        return int(round(value)), line
    except ValueError:
        raise DatasetError(f"{xml_path}:{line}: <{tag}> is not a number: {text!r}") from None


#: Elements this reader understands; anything else is kept verbatim (``extra``) and written back.
_ANNOTATION_TAGS = {"folder", "filename", "path", "source", "size", "segmented", "object"}
_OBJECT_TAGS = {"name", "pose", "truncated", "difficult", "bndbox", "score"}


def _verbatim(element: etree._Element) -> str:
    """An element as XML text, without its tail (re-indented when written back)."""
    copy = etree.fromstring(etree.tostring(element))
    copy.tail = None
    return etree.tostring(copy, encoding="unicode")


def read_voc(xml_path: os.PathLike, known_labels: Optional[Iterable[str]] = None) -> Annotation:
    """Read one labelImg Pascal VOC file and check it (see :func:`_parse_voc`)."""
    return _parse_voc(Path(xml_path), known_labels)[0]


def _parse_voc(xml_path: Path, known_labels: Optional[Iterable[str]] = None) -> Tuple[Annotation, dict]:
    """Read one labelImg Pascal VOC file and check it.

    Checks: well-formed XML, ``<size>`` positive, every ``<object>`` has a ``<name>`` among
    ``known_labels`` (default: :data:`cube_detect.labels.LABELS` names) and a ``<bndbox>``
    with ``0 <= xmin < xmax <= width`` and ``0 <= ymin < ymax <= height``.
    Raises DatasetError ``"<file>:<line>: <what>"``. Also returns the lines of <filename>
    and <size>, for the checks against the image file.
    """
    known = set(LABELS.values() if known_labels is None else known_labels)
    try:
        # No network, no entities: a data-set file is data, not a document to resolve.
        parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
        root = etree.parse(str(xml_path), parser).getroot()
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else (exc.position[0] if exc.position else 1)
        message = exc.msg or str(exc)
        raise DatasetError(f"{xml_path}:{line}: malformed XML: {message}") from None
    except OSError as exc:
        raise DatasetError(f"{xml_path}: cannot read: {exc}") from None
    if root.tag != "annotation":
        raise DatasetError(f"{xml_path}:{root.sourceline}: root element is <{root.tag}>, expected <annotation>")

    filename, filename_line = _text(root, "filename", xml_path)
    folder = (root.findtext("folder") or "").strip()
    path = (root.findtext("path") or "").strip()
    size = root.find("size")
    if size is None:
        raise DatasetError(f"{xml_path}:{root.sourceline}: <annotation> has no <size>")
    width, wline = _int(size, "width", xml_path)
    height, hline = _int(size, "height", xml_path)
    if width <= 0 or height <= 0:
        raise DatasetError(f"{xml_path}:{min(wline, hline)}: image size {width}x{height} is not positive")
    depth_text = (size.findtext("depth") or "").strip()
    depth = int(depth_text) if depth_text.isdigit() else 3

    boxes: List[LabeledBox] = []
    for obj in root.iter("object"):
        name, nline = _text(obj, "name", xml_path)
        if name not in known:
            raise DatasetError(
                f"{xml_path}:{nline}: unknown class {name!r} (expected one of {', '.join(sorted(known))})"
            )
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DatasetError(f"{xml_path}:{obj.sourceline}: <object> has no <bndbox>")
        (xmin, _), (ymin, _) = _int(bndbox, "xmin", xml_path), _int(bndbox, "ymin", xml_path)
        (xmax, _), (ymax, _) = _int(bndbox, "xmax", xml_path), _int(bndbox, "ymax", xml_path)
        line = bndbox.sourceline
        if xmin >= xmax or ymin >= ymax:
            raise DatasetError(f"{xml_path}:{line}: empty box ({xmin}, {ymin}, {xmax}, {ymax}): "
                               "needs xmin < xmax and ymin < ymax")
        if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
            raise DatasetError(
                f"{xml_path}:{line}: box ({xmin}, {ymin}, {xmax}, {ymax}) is outside the {width}x{height} image"
            )
        score: Optional[float] = None
        score_element = obj.find("score")
        if score_element is not None:
            score_text = (score_element.text or "").strip()
            try:
                score = float(score_text)
            except ValueError:
                score = float("nan")
            if not 0.0 <= score <= 1.0:
                raise DatasetError(f"{xml_path}:{score_element.sourceline}: <score> is not a number "
                                   f"between 0 and 1: {score_text!r}")
        difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true", "yes")
        pose = (obj.findtext("pose") or "Unspecified").strip() or "Unspecified"
        truncated_text = obj.findtext("truncated")
        truncated = None if truncated_text is None else truncated_text.strip()
        extra = tuple(_verbatim(child) for child in obj if isinstance(child.tag, str) and child.tag not in _OBJECT_TAGS)
        boxes.append(LabeledBox(name, xmin, ymin, xmax, ymax, score, difficult, pose, truncated, extra))
    source = root.find("source")
    keep_source = source is not None and not (len(source) == 1 and source[0].tag == "database"
                                              and (source[0].text or "").strip() == "Unknown")
    ann = Annotation(filename=filename, width=width, height=height, depth=depth, boxes=boxes, folder=folder, path=path,
                     verified=root.get("verified") == "yes",
                     source=_verbatim(source) if keep_source and source is not None else "",
                     segmented=(root.findtext("segmented") or "0").strip() or "0",
                     extra=tuple(_verbatim(child) for child in root
                                 if isinstance(child.tag, str) and child.tag not in _ANNOTATION_TAGS),
                     attributes=tuple(root.attrib.items()))
    return ann, {"filename": filename_line, "size": size.sourceline}


# --------------------------------------------------------------------------- writing


def _truncated(box: LabeledBox, width: int, height: int) -> str:
    # labelImg's rule (pascal_voc_io.py): touching the far edge, or min == 1 (its clamp).
    if box.ymax == height or box.ymin == 1 or box.xmax == width or box.xmin == 1:
        return "1"
    return "0"


def format_voc(ann: Annotation) -> str:
    """The XML text labelImg would write for ``ann`` (tab-indented, no XML declaration), plus what
    it read and we keep: ``difficult``, ``pose``, ``truncated`` of a box not moved, ``<source>``,
    ``<segmented>``, unknown elements and attributes, the pre-annotation ``<score>``."""
    top = etree.Element("annotation")
    if ann.verified and "verified" not in dict(ann.attributes):  # labelImg's mark of a reviewed image
        top.set("verified", "yes")
    for key, value in ann.attributes:  # as read, in their order; verified as it is now
        if key != "verified":
            top.set(key, value)
        elif ann.verified:
            top.set("verified", "yes")

    def sub(parent: etree._Element, tag: str, text: Optional[str] = None) -> etree._Element:
        element = etree.SubElement(parent, tag)
        if text is not None:
            element.text = text
        return element

    sub(top, "folder", ann.folder)
    sub(top, "filename", ann.filename)
    if ann.path:  # labelImg writes <path> whenever it knows the image's path
        sub(top, "path", ann.path)
    if ann.source:
        top.append(etree.fromstring(ann.source))
    else:
        sub(sub(top, "source"), "database", "Unknown")
    size = sub(top, "size")
    sub(size, "width", str(int(ann.width)))
    sub(size, "height", str(int(ann.height)))
    sub(size, "depth", str(int(ann.depth)))
    sub(top, "segmented", ann.segmented)
    for text in ann.extra:
        top.append(etree.fromstring(text))
    for box in ann.boxes:
        obj = sub(top, "object")
        sub(obj, "name", box.label)
        sub(obj, "pose", box.pose)
        sub(obj, "truncated", _truncated(box, ann.width, ann.height) if box.truncated is None else box.truncated)
        sub(obj, "difficult", "1" if box.difficult else "0")
        bndbox = sub(obj, "bndbox")
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            sub(bndbox, tag, str(int(getattr(box, tag))))
        for text in box.extra:
            obj.append(etree.fromstring(text))
        if box.score is not None:
            sub(obj, "score", f"{box.score:.3f}")
    # labelImg pretty-prints with lxml and turns each two-space indent into a tab; indenting
    # with tabs directly gives the same bytes without touching spaces inside text.
    for element in top.iter():  # kept elements come back re-indented like the rest
        if len(element) and element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    etree.indent(top, space="\t")
    return etree.tostring(top, encoding="unicode") + "\n"


def write_voc(xml_path: os.PathLike, ann: Annotation, root: Optional[os.PathLike] = None,
              before_replace: Optional[Callable[[], None]] = None) -> None:
    """Write ``ann`` in labelImg's layout, atomically (temporary file + rename); never through a
    symlink, and with ``root`` never outside that folder; ``before_replace`` runs just before the
    rename (files.atomic_write_text)."""
    atomic_write_text(Path(xml_path), format_voc(ann), root, before_replace)


# --------------------------------------------------------------------------- images


#: How far into a JPEG the header reader looks for its frame header (SOF) before giving up:
#: EXIF and ICC segments come first, and are skipped by their lengths, not read.
_JPEG_SCAN_LIMIT = 16 << 20


def _png_header(head: bytes) -> Optional[Tuple[int, int, int]]:
    """(width, height, depth) from a PNG's IHDR: depth 1 for colour type 0 (grayscale), else 3."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 26:
        width, height = struct.unpack(">II", head[16:24])
        return width, height, 1 if head[25] == 0 else 3
    return None


def _jpeg_header(handle) -> Optional[Tuple[int, int, int]]:
    """(width, height, depth) from a JPEG's frame header (SOFn): depth 1 for one component, else 3.
    Reads markers only, skipping segments by their lengths; gives up past _JPEG_SCAN_LIMIT."""
    handle.seek(2)
    while handle.tell() < _JPEG_SCAN_LIMIT:
        byte = handle.read(1)
        while byte and byte != b"\xff" and handle.tell() < _JPEG_SCAN_LIMIT:
            byte = handle.read(1)
        while byte == b"\xff":
            byte = handle.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack(">H", length_bytes)[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            data = handle.read(6)
            if len(data) < 6:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return width, height, 1 if data[5] == 1 else 3
        handle.seek(length - 2, os.SEEK_CUR)
    return None


def _read_header(image_path: Path) -> Optional[Tuple[int, int, int]]:
    """The PNG or JPEG header's (width, height, depth), None when it has none; OSError if unreadable."""
    # O_NONBLOCK: a FIFO that carries an image's name answers at once instead of blocking.
    fd = os.open(image_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        head = handle.read(32)
        header = _png_header(head)
        if header is None and head[:2] == b"\xff\xd8":
            header = _jpeg_header(handle)
    return header


def image_header(image_path: os.PathLike) -> Tuple[int, int, int]:
    """(width, height, depth) of a PNG or JPEG from its header alone, never decoding the pixels
    (cheap for any image size). Depth as labelImg writes it: 1 for a grayscale image, else 3.
    Raises DatasetError when the file cannot be read or has no PNG or JPEG header with a size."""
    image_path = Path(image_path)
    try:
        header = _read_header(image_path)
    except OSError as exc:
        raise DatasetError(f"{image_path}: cannot read image: {exc.strerror or exc}") from None
    if header is None or header[0] <= 0 or header[1] <= 0:
        raise DatasetError(f"{image_path}: no PNG or JPEG header with the image's size")
    return int(header[0]), int(header[1]), int(header[2])


def image_size(image_path: os.PathLike) -> Tuple[int, int]:
    """(width, height) of a PNG or JPEG from its header; decodes with OpenCV only as a fallback."""
    image_path = Path(image_path)
    try:
        header = _read_header(image_path)
    except OSError as exc:
        raise DatasetError(f"{image_path}: cannot read image: {exc}") from None
    if header is not None and header[0] > 0 and header[1] > 0:
        return int(header[0]), int(header[1])
    image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DatasetError(f"{image_path}: not a readable image")
    return image.shape[1], image.shape[0]


# --------------------------------------------------------------------------- splits


def _check_sample(image_path: Path, xml_path: Path, known_labels: Optional[Iterable[str]] = None) -> Sample:
    ann, lines = _parse_voc(xml_path, known_labels)
    width, height = image_size(image_path)
    if (width, height) != (ann.width, ann.height):
        raise DatasetError(
            f"{xml_path}:{lines['size']}: <size> says {ann.width}x{ann.height} "
            f"but {image_path.name} is {width}x{height}"
        )
    return Sample(image_path, ann)


def _load_split(split_dir: Path, skip_bad: bool,
                known_labels: Optional[Iterable[str]] = None) -> Tuple[List[Sample], List[str]]:
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
    samples: List[Sample] = []
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
                ann, lines = _parse_voc(xml_path, known)
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
               known_labels: Optional[Iterable[str]] = None) -> List[Sample]:
    """All checked samples of one split directory, sorted by file name; class names must be
    among ``known_labels`` (default: the digits, ``labels.LABELS``)."""
    return _load_split(Path(split_dir), skip_bad, known_labels)[0]


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


# --------------------------------------------------------------------------- writing data sets

#: Stems the numbering counts: ``image7``, ``image007``, ``Image1000`` ...
_NUMBERED = re.compile(r"^image(\d+)$", re.IGNORECASE)
#: Files whose stem takes a number: images and their annotations.
_TAKEN_SUFFIXES = (".png", ".jpg", ".jpeg", ".xml")
#: labelImg's predefined-classes file (one class name per line), written at the data set root.
CLASSES_FILE = "classes.txt"
#: The TF Object Detection API's label map (``item { id: 1 name: 'one' }``), also at the root.
LABEL_MAP_FILE = "label_map.pbtxt"


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
    annotated: int = 0  # images saved with an XML
    failed: int = 0  # saves that wrote nothing (camera down, empty image, full disk, ...)

    def add(self, saved: SavedImage) -> None:
        self.images[saved.split] += 1
        if saved.xml_path is not None:
            self.annotated += 1
            self.faces.update(box.label for box in saved.boxes)

    def line(self, verb: str = "pre-annotated") -> str:
        """One line, e.g. ``saved 5 images (train 4, test 1); pre-annotated 9 faces (one 5, two 4) ...``"""
        total = sum(self.images.values())
        per_split = ", ".join(f"{s} {self.images.get(s, 0)}" for s in SPLITS)
        per_class = ", ".join(f"{n} {self.faces.get(n, 0)}" for _, n in sorted(self.labels.items()))
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
                for suffix in _TAKEN_SUFFIXES:
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


# --------------------------------------------------------------------------- stats command


def count_split(samples: List[Sample], labels: Dict[int, str]) -> dict:
    counts = {"images": len(samples), "faces": 0}
    counts.update(dict.fromkeys(labels.values(), 0))
    for sample in samples:
        for box in sample.annotation.boxes:
            counts["faces"] += 1
            counts[box.label] = counts.get(box.label, 0) + 1
    return counts


def format_stats(rows: List[Tuple[str, dict]], labels: Dict[int, str]) -> str:
    columns = ["images", "faces"] + [name for _, name in sorted(labels.items())]
    table = [["split"] + columns] + [[name] + [str(counts.get(c, 0)) for c in columns] for name, counts in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="directory with train/ and test/ (labelImg VOC)")
    parser.add_argument("--skip-bad", action="store_true", help="warn about bad files and count the others")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="the classes: label_map.pbtxt, labels.txt or classes.txt (default: a *.pbtxt in "
                             "the data set, else the names in its XML files)")


def run(args: argparse.Namespace) -> int:
    root = images_root(Path(args.dataset))
    rows, skipped = [], 0
    total: Dict[str, int] = {}
    splits = [s for s in SPLITS if (root / s).is_dir()]
    labels = resolve_labels([Path(args.dataset)], args.labels)
    print(f"classes: {describe(labels)}")
    for split in splits:
        samples, bad = _load_split(root / split, args.skip_bad, labels.values())
        skipped += len(bad)
        counts = count_split(samples, labels)
        rows.append((split, counts))
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    rows.append(("total", total))
    print(format_stats(rows, labels))
    if skipped:
        print(f"skipped {skipped} bad file(s)")
    return 0
