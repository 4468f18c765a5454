"""The review page's data: a labelImg data set's images and annotations, checked, cached and saved.

:class:`ReviewStore` is what :mod:`cube_detect.review`'s web app serves (Flask-free: importing
this module needs neither Flask nor waitress). Every change is saved at once, atomically, with
:func:`cube_detect.voc.write_voc` (labelImg's Pascal VOC layout); an image accepted as reviewed
gets labelImg's ``verified="yes"``.

- What a save keeps: everything of the file the user did not change. The new annotation is the
  old one with new boxes and ``verified`` (``source``, ``segmented``, unknown elements and
  attributes, ``path`` unchanged); a box the page loaded comes back with its ``key`` (its index
  in the file) and keeps its ``pose``, unknown elements and, when its corners did not move,
  ``truncated``; ``difficult`` is the page's (a key and a checkbox toggle it).
- What is never written: anything outside the data set's real path, anything through a symlink
  (:mod:`cube_detect.files`; refused with HTTP 403 and the reason), an XML for an image the page
  marks bad (unreadable, link loop, several images sharing its stem, absurd header size).
- Conflicts: every load returns the XML's ``version`` (a hash of its bytes, ``"none"`` when there
  is no XML); a save names the version it edited and is refused (HTTP 409) when the file changed
  since, e.g. a second tab or another tool; the file's stat is checked again just before the
  rename (see :meth:`ReviewStore.save` for the one window left). The page then reloads that image.
- One bad entry is one bad row: the listing never fails on a file it cannot use; image size and
  depth come from the file's header (never a decode under the store's lock).
- Only images and XML files inside the data set are read or written: file names checked, real
  paths resolved and checked against the data set's real path (no ``..``, no symbolic link
  leading out).
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from cube_detect.dataset import (
    CLASSES_FILE,
    IMAGE_SUFFIXES,
    SPLITS,
    LabeledImage,
    find_label_maps,
    images_root,
    names_in,
    resolve_labels,
)
from cube_detect.errors import CubeDetectError, DatasetError
from cube_detect.files import UnsafePathError, create_exclusive
from cube_detect.imageinfo import image_header
from cube_detect.labels import LABELS, read_classes_txt
from cube_detect.stats import count_split, format_stats
from cube_detect.voc import Annotation, LabeledBox, format_voc, read_voc, write_voc

#: Image file names the server accepts in a URL: no separators, no leading dot, known suffix.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+ -]{0,200}$")
MAX_BOXES = 500
#: Larger images (by their header) are bad rows: nothing a camera of the course makes, and a
#: header claiming 4294967280 px a side would give an XML our own reader refuses.
MAX_IMAGE_SIDE = 20000
#: Larger XML files are bad rows (a labelImg file of 500 boxes is about 100 kB).
MAX_XML_BYTES = 8 << 20
#: Box corners sent by the page beyond this are refused (400) before any arithmetic.
MAX_COORDINATE = 1e9

STATUS_UNREVIEWED = "unreviewed"
STATUS_REVIEWED = "reviewed"
STATUS_NO_XML = "no-xml"
STATUS_BAD = "bad"

#: The problem of an image whose path, or its XML's, leads out of the data set: answered 404,
#: exactly as a name that does not exist.
LEADS_OUT = "a link that leads out of the data set"


class ReviewError(CubeDetectError):
    """A request the store refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400, current: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.status = status
        self.current = current


def dataset_labels(root: os.PathLike, labels_file: Optional[os.PathLike] = None) -> Dict[int, str]:
    """The data set's classes, ``{id: name}``; the page's key N is the N-th class by id.

    As ``stats`` and ``train`` find them (:func:`cube_detect.dataset.resolve_labels`: ``labels_file``,
    else a ``*.pbtxt`` label map in the data set, else the names in its XML files), except for a
    data set with neither map nor named object yet (fresh captures without pre-annotation):
    labelImg's ``classes.txt`` there, else the digits.
    """
    root = Path(root)
    splits = images_root(root)
    if labels_file is None and not find_label_maps(root) and not names_in(splits / s for s in SPLITS):
        for classes in (root / CLASSES_FILE, splits / CLASSES_FILE):
            if classes.is_file():
                return read_classes_txt(classes)
        return dict(LABELS)
    return resolve_labels([root], None if labels_file is None else Path(labels_file))


Stamp = Optional[Tuple[int, int, int, int]]
#: (split, name, image, xml, (image stamp, xml stamp), problem): one image file of a split.
Row = Tuple[str, str, Path, Path, Tuple[Stamp, Stamp], str]


def _stamp(path: Path) -> Stamp:
    """What changes when a file is rewritten (atomic replace gives a new inode, a write a new mtime)."""
    try:
        st = path.stat()
    except (OSError, RuntimeError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


def _version(data: Optional[bytes]) -> str:
    return "none" if data is None else hashlib.sha256(data).hexdigest()[:20]


def _short(value: Any) -> str:
    """A value for an error message, at most 40 characters (a number of 400 digits is not shown)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 30:
        return f"a number of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, what: str) -> float:
    """A box corner from the page: a finite JSON number within +-MAX_COORDINATE, else ReviewError 400."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReviewError(f"{what} is not a number: {_short(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ReviewError(f"{what} is not a finite number: {_short(value)}")
    if abs(value) > MAX_COORDINATE:  # int against float compares exactly, even for 10**400
        raise ReviewError(f"{what} is out of range: {_short(value)}")
    return float(value)


@dataclass
class Entry:
    """One image of the data set and what its XML says."""

    split: str
    name: str
    image_path: Path
    xml_path: Path
    stamp: Tuple[Stamp, Stamp]
    status: str
    version: str
    annotation: Optional[Annotation] = None
    width: int = 0
    height: int = 0
    error: str = ""
    depth: int = 3  # from the image's header: what a new XML says

    @property
    def key(self) -> str:
        return f"{self.split}/{self.name}"

    def summary(self) -> Dict[str, Any]:
        """The side list's row."""
        boxes = self.annotation.boxes if self.annotation else []
        scores = [b.score for b in boxes if b.score is not None]
        classes: Dict[str, int] = {}
        for box in boxes:
            classes[box.label] = classes.get(box.label, 0) + 1
        return {"id": self.key, "split": self.split, "name": self.name, "status": self.status,
                "faces": len(boxes), "classes": classes, "min_score": min(scores) if scores else None,
                "error": self.error, "version": self.version}

    def record(self) -> Dict[str, Any]:
        """Everything the page needs to show and edit the image; each box's ``key`` is its index
        in the file, which the page sends back so that the box keeps what the page does not show."""
        boxes = self.annotation.boxes if self.annotation else []
        return dict(self.summary(), width=self.width, height=self.height,
                    verified=bool(self.annotation and self.annotation.verified),
                    boxes=[{"label": b.label, "xmin": b.xmin, "ymin": b.ymin, "xmax": b.xmax, "ymax": b.ymax,
                            "score": b.score, "difficult": b.difficult, "key": i} for i, b in enumerate(boxes)])


class _ChangedMeanwhile(Exception):
    """The XML's stat changed between the version check and the rename."""


class ReviewStore:
    """The data set's images and annotations for the page: scans, caches, checks and saves.

    Thread-safe. Files are re-read only when their stat changes; a save always re-reads the XML
    it replaces and compares versions under the store's lock. Nothing under the lock decodes an
    image: sizes and depths come from the headers.
    """

    def __init__(self, root: os.PathLike, labels: Optional[Dict[int, str]] = None,
                 labels_file: Optional[os.PathLike] = None):
        self.root = Path(root).expanduser().absolute()
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: data set directory does not exist")
        self.real_root = self.root.resolve()
        #: where train/ and test/ are: the root, or root/images (the course's layout)
        self.splits_root = images_root(self.root)
        self.label_map = dict(labels) if labels is not None else dataset_labels(self.root, labels_file)
        self.labels = [name for _, name in sorted(self.label_map.items())]
        self._lock = threading.RLock()
        self._cache: Dict[str, Entry] = {}

    # ------------------------------------------------------------------ paths

    def inside(self, path: Path) -> bool:
        """Whether ``path``'s real path (links followed) is inside the data set's real path."""
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a link loop
            return False
        return real == self.real_root or self.real_root in real.parents

    @staticmethod
    def _check_name(split: str, name: str) -> None:
        if split not in SPLITS or not _SAFE_NAME.match(name) or ".." in name \
                or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
            raise ReviewError(f"no such image: {split}/{name}", 404)

    def image_path(self, split: str, name: str) -> Path:
        """The image ``split/name``, checked: ReviewError 404 for anything that is not one."""
        self._check_name(split, name)
        path = self.splits_root / split / name
        if not self.inside(path) or not self.inside(path.with_suffix(".xml")):
            raise ReviewError(f"{split}/{name} leads out of the data set: refused", 404)
        if not path.is_file():
            raise ReviewError(f"no such image: {split}/{name}", 404)
        return path

    # ------------------------------------------------------------------ listing

    def _rows(self, split: str, only: Optional[str] = None) -> List[Row]:
        """The image files of one split (or only the one named ``only``), with their problem, if
        any, without parsing anything. A file that cannot be used is a row with its problem
        (link loop, dangling link, folder, unreadable, name shared, link leading out), never an
        exception. Real paths are resolved only for symbolic links (and once per split folder):
        cheap enough to run at every poll of a data set of thousands of images."""
        folder = self.splits_root / split
        try:
            with os.scandir(folder) as scan:
                found = {entry.name: entry for entry in scan}
        except OSError:
            return []
        folder_inside = self.inside(folder)
        stems: Dict[str, List[str]] = {}
        for name in sorted(found):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                stems.setdefault(os.path.splitext(name)[0], []).append(name)
        rows: List[Row] = []
        for stem, images in stems.items():
            xml = folder / f"{stem}.xml"
            for name in images:
                if only is not None and name != only:
                    continue
                image = folder / name
                try:
                    problem = self._problem(found, folder_inside, image, xml, images)
                except (OSError, RuntimeError) as exc:
                    problem = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
                if problem is not None:
                    rows.append((split, name, image, xml, (_stamp(image), _stamp(xml)), problem))
        return rows

    def _problem(self, found: Dict[str, os.DirEntry], folder_inside: bool, image: Path, xml: Path,
                 images: List[str]) -> Optional[str]:
        """Why ``image`` cannot be edited ("" if it can); None when it vanished meanwhile."""
        try:
            info = os.stat(image)  # follows links
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a symbolic link loop"
            if exc.errno == errno.ENOENT:
                return "a symbolic link to nothing" if found[image.name].is_symlink() else None
            return f"cannot read: {exc.strerror or exc}"
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file (a folder named like an image?)"
        if len(images) > 1:
            return (f"several images share the stem {os.path.splitext(image.name)[0]!r}: {', '.join(images)} "
                    "(one XML for both): rename or remove all but one")
        if not _SAFE_NAME.match(image.name):
            return "file name has characters the page does not serve"
        if xml.name in found and found[xml.name].is_symlink():
            try:
                os.stat(xml)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return f"its XML {xml.name} is a symbolic link loop"
        if not all(self.inside(path) if path.name in found and found[path.name].is_symlink() else folder_inside
                   for path in (image, xml)):
            return LEADS_OUT
        return ""

    def _listing(self) -> List[Row]:
        """Every image file of every split, in split then name order (see :meth:`_rows`)."""
        return [row for split in SPLITS for row in self._rows(split)]

    def generation(self) -> str:
        """Changes whenever an image or XML is added, removed or rewritten: what the page polls."""
        digest = hashlib.sha256()
        for split, name, _, _, stamps, problem in self._listing():
            digest.update(repr((split, name, stamps, problem)).encode())
        return digest.hexdigest()[:20]

    def _read(self, split: str, name: str, image: Path, xml: Path, stamps: Tuple[Stamp, Stamp],
              problem: str = "") -> Entry:
        def bad(error: str, version: str = "none", annotation: Optional[Annotation] = None) -> Entry:
            return Entry(split, name, image, xml, stamps, STATUS_BAD, version, annotation, error=error)

        if problem:
            return bad(problem)
        try:
            width, height, depth = image_header(image)  # the header only: cheap for any size
        except DatasetError as exc:
            return bad(str(exc))
        if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
            return bad(f"{name}: its header says {width}x{height} pixels, more than {MAX_IMAGE_SIDE} a side: "
                       "not an image the page shows or edits")
        try:
            info = os.stat(xml)
        except FileNotFoundError:
            return Entry(split, name, image, xml, stamps, STATUS_NO_XML, "none", None, width, height, depth=depth)
        except (OSError, RuntimeError) as exc:
            return bad(f"{xml}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        if not stat.S_ISREG(info.st_mode):
            return bad(f"{xml}: not a regular file")
        if info.st_size > MAX_XML_BYTES:
            return bad(f"{xml}: {info.st_size} bytes, more than a labelImg file ever is ({MAX_XML_BYTES})")
        data: Optional[bytes] = None
        annotation: Optional[Annotation] = None
        for _ in range(5):  # a consistent (bytes, annotation) pair while someone rewrites the file
            try:
                data = xml.read_bytes()
            except FileNotFoundError:
                return Entry(split, name, image, xml, stamps, STATUS_NO_XML, "none", None, width, height, depth=depth)
            except OSError as exc:
                return bad(f"{xml}: cannot read: {exc.strerror or exc}")
            try:
                annotation = read_voc(xml, self.labels)
            except DatasetError as exc:
                return bad(str(exc), _version(data))
            try:
                if xml.read_bytes() == data:
                    break
            except OSError:
                continue
        version = _version(data)
        if annotation is None:
            return bad(f"{xml}: keeps changing", version)
        if (annotation.width, annotation.height) != (width, height):
            return bad(f"{xml}: <size> says {annotation.width}x{annotation.height} but {name} is {width}x{height}",
                       version)
        status = STATUS_REVIEWED if annotation.verified else STATUS_UNREVIEWED
        return Entry(split, name, image, xml, stamps, status, version, annotation, width, height, depth=depth)

    def entries(self) -> List[Entry]:
        """Every image, in split then name order (re-reads only what changed on disk)."""
        with self._lock:
            listing = self._listing()
            fresh: Dict[str, Entry] = {}
            for split, name, image, xml, stamps, problem in listing:
                key = f"{split}/{name}"
                cached = self._cache.get(key)
                if cached is None or cached.stamp != stamps or problem:
                    cached = self._read(split, name, image, xml, stamps, problem)
                fresh[key] = cached
            self._cache = fresh
            return list(fresh.values())

    def entry(self, split: str, name: str) -> Entry:
        """One image, read now from disk (never from the cache), with the same checks as the list:
        an image the list shows as bad is bad here too (and cannot be saved). ReviewError 404 for
        a name that is not an image of the split, or whose path leads out of the data set."""
        self._check_name(split, name)
        with self._lock:
            rows = self._rows(split, only=name)
            if not rows:
                raise ReviewError(f"no such image: {split}/{name}", 404)
            _, _, image, xml, stamps, problem = rows[0]
            if problem == LEADS_OUT:
                raise ReviewError(f"{split}/{name} leads out of the data set: refused", 404)
            entry = self._read(split, name, image, xml, stamps, problem)
            self._cache[entry.key] = entry
            return entry

    def summary(self, entries: Optional[List[Entry]] = None) -> Dict[str, Any]:
        """Images and faces per split and class (``stats``'s figures, same functions), reviewed share."""
        entries = self.entries() if entries is None else entries
        rows: List[Tuple[str, Dict[str, int]]] = []
        total: Dict[str, int] = {}
        for split in SPLITS:
            mine = [e for e in entries if e.split == split]
            if not mine and not (self.splits_root / split).is_dir():
                continue
            samples = [LabeledImage(e.image_path, e.annotation) for e in mine
                       if e.annotation is not None and e.status in (STATUS_UNREVIEWED, STATUS_REVIEWED)]
            counts = dict(count_split(samples, self.label_map))
            counts.update(listed=len(mine), reviewed=sum(e.status == STATUS_REVIEWED for e in mine),
                          no_xml=sum(e.status == STATUS_NO_XML for e in mine),
                          bad=sum(e.status == STATUS_BAD for e in mine))
            rows.append((split, counts))
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
        rows.append(("total", total))
        return {"labels": self.labels, "rows": [{"split": name, **counts} for name, counts in rows],
                "stats": format_stats(rows, self.label_map)}

    # ------------------------------------------------------------------ saving

    def _boxes(self, raw: Any, width: int, height: int, old: Sequence[LabeledBox] = ()) -> List[LabeledBox]:
        """The page's boxes, checked (ReviewError 400). A box with ``key`` (its index among the
        ``old`` boxes of the version it edited) keeps what the page does not show: its pose, its
        unknown elements, and its ``truncated`` if its corners did not move (else recomputed by
        labelImg's rule). ``difficult``: the page's, else the old box's, else false."""
        if not isinstance(raw, list) or len(raw) > MAX_BOXES:
            raise ReviewError(f"'boxes' must be a list of at most {MAX_BOXES} boxes")
        boxes = []
        used: Set[int] = set()
        for i, item in enumerate(raw, 1):
            if not isinstance(item, dict):
                raise ReviewError(f"box {i}: not an object")
            label = item.get("label")
            if not isinstance(label, str) or label not in self.labels:
                raise ReviewError(f"box {i}: unknown class {_short(label)} (expected one of {', '.join(self.labels)})")
            xmin, ymin, xmax, ymax = (int(round(_number(item.get(key), f"box {i}: {key}")))
                                      for key in ("xmin", "ymin", "xmax", "ymax"))
            if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
                raise ReviewError(f"box {i}: ({xmin}, {ymin}, {xmax}, {ymax}) is empty or outside "
                                  f"the {width}x{height} image")
            score = item.get("score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                      or not 0.0 <= score <= 1.0):
                raise ReviewError(f"box {i}: score must be null or a number between 0 and 1, got {_short(score)}")
            key = item.get("key")
            base: Optional[LabeledBox] = None
            if key is not None:
                if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < len(old):
                    raise ReviewError(f"box {i}: key must be null (a new box) or the index of a box of the file "
                                      f"(0 to {len(old) - 1}), got {_short(key)}")
                if key in used:
                    raise ReviewError(f"box {i}: key {key} names a box that another box of the list names too")
                used.add(key)
                base = old[key]
            difficult = item.get("difficult")
            if difficult is None:
                difficult = base.difficult if base is not None else False
            elif not isinstance(difficult, bool):
                raise ReviewError(f"box {i}: difficult must be true or false, got {_short(difficult)}")
            box = LabeledBox(label, xmin, ymin, xmax, ymax, None if score is None else float(score), difficult)
            if base is not None:
                moved = (xmin, ymin, xmax, ymax) != (base.xmin, base.ymin, base.xmax, base.ymax)
                box = replace(box, pose=base.pose, extra=base.extra, truncated=None if moved else base.truncated)
            boxes.append(box)
        return boxes

    def save(self, split: str, name: str, version: Any, boxes: Any, verified: Any) -> Entry:
        """Write the image's XML if it still is ``version``. ReviewError 409 (with the current
        record) when it changed on disk since, 422 for an image or XML the page marks bad, 400
        for bad boxes, 403 for a write the file module refuses (the XML is a symlink, or its
        folder resolves outside the data set), 507 when the disk refuses (full, read-only).

        The new file is the old annotation with the new boxes and ``verified`` (``dataclasses.
        replace``): ``source``, ``segmented``, unknown elements, attributes, ``path`` and each
        kept box's pose, unknown elements and unmoved ``truncated`` survive. An image without XML
        gets a new one only if none appeared meanwhile (:func:`cube_detect.files.create_exclusive`,
        409 otherwise).

        Edits from outside (labelImg, an editor): saves of this server are serialised by the
        store's lock; another program is not. Its write is detected if it lands before the
        version check (the bytes' hash differs: 409) or between that check and the rename (the
        file's inode, size, mtime and ctime are compared once the new file is written, just
        before ``os.replace``: 409, nothing written). Only a write that lands in the last
        instant, after that comparison and before the rename (microseconds), is replaced
        unseen; the other program's file is then lost, ours is whole. No lock can close that
        window against a program that takes no lock.
        """
        if not isinstance(version, str):
            raise ReviewError("'version' (from the load) is required")
        if not isinstance(verified, bool):
            raise ReviewError("'verified' must be true or false")
        with self._lock:
            entry = self.entry(split, name)
            if entry.version != version:
                raise ReviewError(f"{entry.key} changed on disk since the page loaded it (another tab or tool?): "
                                  "not saved; the page shows it as it is now, redo the change", 409, entry.record())
            if entry.status == STATUS_BAD:
                raise ReviewError(f"{entry.key}: cannot edit: {entry.error}", 422, entry.record())
            old = entry.annotation
            new_boxes = self._boxes(boxes, entry.width, entry.height, old.boxes if old is not None else ())
            try:
                if old is not None:
                    seen = entry.stamp[1]

                    def unchanged() -> None:
                        if _stamp(entry.xml_path) != seen:
                            raise _ChangedMeanwhile()

                    write_voc(entry.xml_path, replace(old, boxes=new_boxes, verified=verified), root=self.real_root,
                              before_replace=unchanged)
                else:
                    annotation = Annotation(name, entry.width, entry.height, entry.depth, new_boxes, split,
                                            str(entry.image_path), verified)
                    if not create_exclusive(entry.xml_path, format_voc(annotation).encode("utf-8"),
                                            root=self.real_root):
                        raise ReviewError(f"{entry.key}: an XML appeared meanwhile (capture?): not saved; "
                                          "the page shows it as it is now", 409, self.entry(split, name).record())
            except _ChangedMeanwhile:
                raise ReviewError(f"{entry.key} was rewritten on disk while saving (another tool?): not saved; "
                                  "the page shows it as it is now, redo the change", 409,
                                  self.entry(split, name).record()) from None
            except UnsafePathError as exc:
                raise ReviewError(f"{entry.key}: not saved: {exc}", 403) from None
            except OSError as exc:  # full disk, read-only folder, ...
                raise ReviewError(f"{entry.xml_path}: cannot write: {exc.strerror or exc}", 507) from None
            return self.entry(split, name)


__all__ = ["ReviewStore", "ReviewError", "Entry", "dataset_labels"]
