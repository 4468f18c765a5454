"""labelImg's Pascal VOC format: one ``.xml`` per image, read, checked and written back.

:func:`read_voc` checks a file and raises one :class:`~cube_detect.errors.DatasetError` whose
message starts with ``<file>:<line>:``; :func:`format_voc` / :func:`write_voc` write what
labelImg writes, byte for byte, plus what the file said that labelImg keeps or ignores
(``difficult``, ``pose``, unknown elements, the pre-annotation ``<score>``).
Where the files live (splits, class sets): :mod:`cube_detect.dataset`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

from lxml import etree

from cube_detect.boxes import BBox
from cube_detect.errors import DatasetError
from cube_detect.files import atomic_write_text
from cube_detect.labels import LABELS


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
    """Read one labelImg Pascal VOC file and check it (see :func:`parse_voc`)."""
    return parse_voc(Path(xml_path), known_labels)[0]


def parse_voc(xml_path: Path, known_labels: Optional[Iterable[str]] = None) -> Tuple[Annotation, dict]:
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
