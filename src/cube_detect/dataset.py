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
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, NamedTuple, Optional, Tuple

from lxml import etree

from cube_detect.errors import DatasetError
from cube_detect.labels import LABELS, atomic_write_text

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Box:
    """One annotated face: class name and pixel box (labelImg's integer corners)."""

    label: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int

    @property
    def width(self) -> int:
        return self.xmax - self.xmin

    @property
    def height(self) -> int:
        return self.ymax - self.ymin


@dataclass
class Annotation:
    """The content of one labelImg VOC file."""

    filename: str
    width: int
    height: int
    depth: int
    boxes: List[Box] = field(default_factory=list)
    folder: str = ""
    path: str = ""


@dataclass(frozen=True)
class Sample:
    image_path: Path
    annotation: Annotation


class Dataset(NamedTuple):
    train: List[Sample]
    test: List[Sample]


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

    boxes: List[Box] = []
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
            raise DatasetError(f"{xml_path}:{line}: empty box ({xmin}, {ymin}, {xmax}, {ymax}): needs xmin < xmax and ymin < ymax")
        if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
            raise DatasetError(
                f"{xml_path}:{line}: box ({xmin}, {ymin}, {xmax}, {ymax}) is outside the {width}x{height} image"
            )
        boxes.append(Box(name, xmin, ymin, xmax, ymax))
    ann = Annotation(filename=filename, width=width, height=height, depth=depth, boxes=boxes, folder=folder, path=path)
    return ann, {"filename": filename_line, "size": size.sourceline}


# --------------------------------------------------------------------------- writing


def _truncated(box: Box, width: int, height: int) -> str:
    # labelImg's rule (pascal_voc_io.py): touching the far edge, or min == 1 (its clamp).
    if box.ymax == height or box.ymin == 1 or box.xmax == width or box.xmin == 1:
        return "1"
    return "0"


def format_voc(ann: Annotation) -> str:
    """The XML text labelImg would write for ``ann`` (tab-indented, no XML declaration)."""
    top = etree.Element("annotation")

    def sub(parent: etree._Element, tag: str, text: Optional[str] = None) -> etree._Element:
        element = etree.SubElement(parent, tag)
        if text is not None:
            element.text = text
        return element

    sub(top, "folder", ann.folder)
    sub(top, "filename", ann.filename)
    if ann.path:  # labelImg writes <path> whenever it knows the image's path
        sub(top, "path", ann.path)
    sub(sub(top, "source"), "database", "Unknown")
    size = sub(top, "size")
    sub(size, "width", str(int(ann.width)))
    sub(size, "height", str(int(ann.height)))
    sub(size, "depth", str(int(ann.depth)))
    sub(top, "segmented", "0")
    for box in ann.boxes:
        obj = sub(top, "object")
        sub(obj, "name", box.label)
        sub(obj, "pose", "Unspecified")
        sub(obj, "truncated", _truncated(box, ann.width, ann.height))
        sub(obj, "difficult", "0")
        bndbox = sub(obj, "bndbox")
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            sub(bndbox, tag, str(int(getattr(box, tag))))
    # labelImg pretty-prints with lxml and turns each two-space indent into a tab; indenting
    # with tabs directly gives the same bytes without touching spaces inside text.
    etree.indent(top, space="\t")
    return etree.tostring(top, encoding="unicode") + "\n"


def write_voc(xml_path: os.PathLike, ann: Annotation) -> None:
    """Write ``ann`` in labelImg's layout, atomically (temporary file + rename)."""
    atomic_write_text(Path(xml_path), format_voc(ann))


# --------------------------------------------------------------------------- images


def _png_size(head: bytes) -> Optional[Tuple[int, int]]:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def _jpeg_size(handle) -> Optional[Tuple[int, int]]:
    handle.seek(2)
    while True:
        byte = handle.read(1)
        while byte and byte != b"\xff":
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
            data = handle.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return width, height
        handle.seek(length - 2, os.SEEK_CUR)


def image_size(image_path: os.PathLike) -> Tuple[int, int]:
    """(width, height) of a PNG or JPEG from its header; decodes with OpenCV only as a fallback."""
    image_path = Path(image_path)
    try:
        with open(image_path, "rb") as handle:
            head = handle.read(32)
            size = _png_size(head)
            if size is None and head[:2] == b"\xff\xd8":
                size = _jpeg_size(handle)
    except OSError as exc:
        raise DatasetError(f"{image_path}: cannot read image: {exc}") from None
    if size is not None and size[0] > 0 and size[1] > 0:
        return int(size[0]), int(size[1])
    import cv2  # only for odd files the header parser does not understand

    image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DatasetError(f"{image_path}: not a readable image")
    return image.shape[1], image.shape[0]


# --------------------------------------------------------------------------- splits


def _check_sample(image_path: Path, xml_path: Path) -> Sample:
    ann, lines = _parse_voc(xml_path)
    width, height = image_size(image_path)
    if (width, height) != (ann.width, ann.height):
        raise DatasetError(
            f"{xml_path}:{lines['size']}: <size> says {ann.width}x{ann.height} but {image_path.name} is {width}x{height}"
        )
    return Sample(image_path, ann)


def _load_split(split_dir: Path, skip_bad: bool) -> Tuple[List[Sample], List[str]]:
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: not a directory")
    images, xmls = {}, {}
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
        if not candidates:
            try:
                ann, lines = _parse_voc(xml_path)
                fail(f"{xml_path}:{lines['filename']}: missing image: neither {ann.filename!r} nor {stem}.png/.jpg/.jpeg is beside it")
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
            samples.append(_check_sample(candidates[0], xml_path))
        except DatasetError as exc:
            fail(str(exc))
    return samples, bad


def load_split(split_dir: os.PathLike, skip_bad: bool = False) -> List[Sample]:
    """All checked samples of one split directory, sorted by file name."""
    return _load_split(Path(split_dir), skip_bad)[0]


def load_dataset(root: os.PathLike, skip_bad: bool = False) -> Dataset:
    """``Dataset(train, test)`` from ``<root>/train`` and ``<root>/test``.

    ``train`` must exist; a missing ``test`` gives an empty list and a warning.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data set directory does not exist")
    train = load_split(root / "train", skip_bad)
    if (root / "test").is_dir():
        test = load_split(root / "test", skip_bad)
    else:
        log.warning("%s has no test/ split", root)
        test = []
    return Dataset(train, test)


# --------------------------------------------------------------------------- stats command


def count_split(samples: List[Sample]) -> dict:
    counts = {"images": len(samples), "faces": 0}
    counts.update({name: 0 for name in LABELS.values()})
    for sample in samples:
        for box in sample.annotation.boxes:
            counts["faces"] += 1
            counts[box.label] = counts.get(box.label, 0) + 1
    return counts


def format_stats(rows: List[Tuple[str, dict]]) -> str:
    columns = ["images", "faces"] + list(LABELS.values())
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


def run(args: argparse.Namespace) -> int:
    root = Path(args.dataset)
    if not root.is_dir():
        raise DatasetError(f"{root}: data set directory does not exist")
    rows, skipped = [], 0
    total = {}
    splits = [s for s in SPLITS if (root / s).is_dir()]
    if "train" not in splits:
        raise DatasetError(f"{root / 'train'}: not a directory (a data set has train/ and test/)")
    for split in splits:
        samples, bad = _load_split(root / split, args.skip_bad)
        skipped += len(bad)
        counts = count_split(samples)
        rows.append((split, counts))
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    rows.append(("total", total))
    print(format_stats(rows))
    if skipped:
        print(f"skipped {skipped} bad file(s)")
    return 0
