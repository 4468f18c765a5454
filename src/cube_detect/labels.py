"""The one source of truth for class ids and names, and the two label files users have.

- ``label_map.pbtxt``: TF Object Detection API format used in the workshops
  (``item { id: 1 name: 'one' }``).
- ``labels.txt``: pycoral format, one ``<id> <name>`` per line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Mapping, Tuple

from cube_detect.errors import CubeDetectError
from cube_detect.files import atomic_write_text

#: Class ids as in the workshops' label_map.pbtxt. Id 0 is background, never a label.
LABELS: Dict[int, str] = {1: "one", 2: "two"}
NAME_TO_ID: Dict[str, int] = {name: cid for cid, name in LABELS.items()}


class LabelFileError(CubeDetectError):
    """A label file that cannot be read; the message names the file and line."""


def format_label_map(labels: Mapping[int, str] = LABELS) -> str:
    return "".join(f"item {{\n  id: {cid}\n  name: '{name}'\n}}\n" for cid, name in sorted(labels.items()))


def format_labels_txt(labels: Mapping[int, str] = LABELS) -> str:
    return "".join(f"{cid} {name}\n" for cid, name in sorted(labels.items()))


#: The one help text of every command's ``--labels FILE`` (stats, train, review).
LABELS_HELP = ("the classes: label_map.pbtxt, labels.txt or classes.txt (default: a *.pbtxt in the data set, else "
               "the names in its XML files, sorted by name, ids from 1; the digits one, two without a data set)")


def label_file_paths(model_prefix: os.PathLike) -> Tuple[Path, Path]:
    """The label files an export writes for the model ``PREFIX`` (``models/mycell``):
    ``PREFIX.labels.txt`` and ``PREFIX.label_map.pbtxt``, named after their model so that two
    models exported into one folder never overwrite each other's (models exported before this
    naming wrote ``labels.txt`` / ``label_map.pbtxt``; any label file can still be given by path)."""
    prefix = Path(model_prefix)
    return prefix.with_name(prefix.name + ".labels.txt"), prefix.with_name(prefix.name + ".label_map.pbtxt")


def write_label_files(model_prefix: os.PathLike, labels: Mapping[int, str] = LABELS) -> Tuple[Path, Path]:
    """Write ``PREFIX.labels.txt`` and ``PREFIX.label_map.pbtxt`` (:func:`label_file_paths`)."""
    labels_txt, label_map = label_file_paths(model_prefix)
    labels_txt.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(label_map, format_label_map(labels))
    atomic_write_text(labels_txt, format_labels_txt(labels))
    return labels_txt, label_map


_ITEM_RE = re.compile(r"item\s*\{(?P<body>[^{}]*)\}", re.S)
_ID_RE = re.compile(r"\bid\s*:\s*(?P<id>-?\d+)")
_NAME_RE = re.compile(r"\bname\s*:\s*(?P<q>['\"])(?P<name>[^'\"]*)(?P=q)")


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _without_comments(text: str) -> str:
    """Protobuf text comments (``# ...`` to the end of the line) blanked, line numbers kept."""
    return re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0)), text)


def read_label_map(path: os.PathLike) -> Dict[int, str]:
    """Read a TF OD API ``label_map.pbtxt`` (items with ``id`` and ``name``; ``#`` comments)."""
    path = Path(path)
    try:
        text = _without_comments(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}: cannot read label map: {exc}") from exc
    labels: Dict[int, str] = {}
    for item in _ITEM_RE.finditer(text):
        line = _line_of(text, item.start())
        id_match, name_match = _ID_RE.search(item["body"]), _NAME_RE.search(item["body"])
        if not id_match or not name_match:
            raise LabelFileError(f"{path}:{line}: item needs both 'id' and 'name'")
        cid = int(id_match["id"])
        if cid <= 0 or cid in labels:
            raise LabelFileError(f"{path}:{line}: id {cid} is not a new positive id")
        labels[cid] = name_match["name"]
    if not labels:
        raise LabelFileError(f"{path}: no 'item {{ id: N name: '...' }}' entries")
    return labels


def read_labels_txt(path: os.PathLike) -> Dict[int, str]:
    """Read a pycoral ``labels.txt``: ``<id> <name>`` per line (blank lines ignored)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}: cannot read labels: {exc}") from exc
    labels: Dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise LabelFileError(f"{path}:{number}: expected '<id> <name>', got {line!r}")
        cid = int(parts[0])
        if cid in labels:
            raise LabelFileError(f"{path}:{number}: id {cid} appears twice")
        labels[cid] = parts[1].strip()
    if not labels:
        raise LabelFileError(f"{path}: no labels")
    return labels


def read_classes_txt(path: os.PathLike) -> Dict[int, str]:
    """Read labelImg's ``classes.txt`` (``predefined_classes.txt``): one name per line, ids 1, 2, ..."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}: cannot read class names: {exc}") from exc
    if not names:
        raise LabelFileError(f"{path}: no class names")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LabelFileError(f"{path}: class name(s) listed twice: {', '.join(twice)}")
    return dict(enumerate(names, start=1))


def read_labels(path: os.PathLike) -> Dict[int, str]:
    """Read any label file: a TF OD API label map (``.pbtxt``), pycoral's ``labels.txt``
    (``<id> <name>`` lines) or labelImg's ``classes.txt`` (one name per line)."""
    if str(path).endswith(".pbtxt"):
        return read_label_map(path)
    try:
        lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}: cannot read labels: {exc}") from exc
    numbered = bool(lines) and all(re.match(r"^\s*\d+\s+\S", line) for line in lines)
    return read_labels_txt(path) if numbered else read_classes_txt(path)


def describe(labels: Mapping[int, str]) -> str:
    """``1 one, 2 two``: a label set in one line."""
    return ", ".join(f"{cid} {name}" for cid, name in sorted(labels.items()))
