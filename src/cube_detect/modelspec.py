"""What inference needs to know about a model, carried beside it in ``NAME.json``.

Training writes it, export copies it next to the ``.tflite`` file, inference reads it: one
source of truth for labels, input size, letterboxing and the output layout, so training and
inference cannot drift apart. The sidecar's JSON is written and read here only
(``to_dict``/``from_dict``, ``save``/``load``): by train (its run's ``state.json``), export,
``evaluate --set-threshold``, inference and the tests. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from cube_detect.errors import ModelError
from cube_detect.files import atomic_write_text
from cube_detect.labels import LABELS
from cube_detect.reader import ReaderSpec

FORMAT = "cube_detect-model/1"


@dataclass
class ModelSpec:
    width: int = 160
    height: int = 120
    channels: int = 1  # 1 = grayscale input (cameras are grey or low-saturation)
    stride: int = 8
    labels: Dict[int, str] = field(default_factory=lambda: dict(LABELS))
    pad_value: int = 0  # letterbox padding: dark, like the cell's background
    #: Default score threshold, chosen by export on validation scenes of every family (the one
    #: that maximises exact sorted sequences); every tool and node uses it unless told otherwise.
    threshold: float = 0.5
    #: sha256 of the .tflite this sidecar describes (written by export; checked by inference).
    model_sha256: str = ""
    #: The face reader that rescores this model's proposals (``cube_detect.reader``); None: none.
    reader: Optional[ReaderSpec] = None
    extra: Dict[str, Any] = field(default_factory=dict)  # metrics, training settings

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def grid(self) -> Tuple[int, int]:
        """(rows, cols) of the output maps."""
        return -(-self.height // self.stride), -(-self.width // self.stride)

    @property
    def class_ids(self):
        """Class id of each heatmap channel, in channel order."""
        return sorted(self.labels)

    def to_dict(self) -> Dict[str, Any]:
        """The sidecar's document (what ``from_dict`` reads back): the fields, then ``extra``."""
        doc = {
            "format": FORMAT,
            "labels": {str(k): v for k, v in sorted(self.labels.items())},
            "input": {"width": self.width, "height": self.height, "channels": self.channels,
                      "resize": "letterbox", "pad_value": self.pad_value, "range": "uint8 pixels"},
            "stride": self.stride,
            "threshold": self.threshold,
            "model_sha256": self.model_sha256,
            "outputs": {"heatmap": "sigmoid score per class and cell, channels in label-id order",
                        "boxes": "left, top, right, bottom distances from the cell centre, in cells"},
        }
        if self.reader is not None:
            doc["reader"] = self.reader.to_dict()
        doc.update(deepcopy(self.extra))
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save(self, path: os.PathLike) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: os.PathLike) -> ModelSpec:
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelError(f"{path}: model sidecar not found (export writes it beside the .tflite)") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: model sidecar is not valid JSON: {exc}") from exc
        return cls.from_dict(doc, path)

    @classmethod
    def from_dict(cls, doc: Any, path: os.PathLike) -> ModelSpec:
        """The spec of a sidecar document, every field validated (one ModelError naming ``path``,
        where the document came from, and the field)."""
        path = Path(path)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise ModelError(f"{path}: not a {FORMAT} sidecar (format={found!r})")
        labels = _labels_field(doc, path)
        return cls(
            width=_int_field(doc, "input.width", path, 8, 4096),
            height=_int_field(doc, "input.height", path, 8, 4096),
            channels=_int_field(doc, "input.channels", path, 1, 3, allowed=(1, 3)),
            stride=_int_field(doc, "stride", path, 1, 64),
            labels=labels,
            pad_value=_int_field(doc, "input.pad_value", path, 0, 255, default=0),
            threshold=_number_field(doc, "threshold", path, 0.0, 1.0, default=0.5),
            model_sha256=str(doc.get("model_sha256", "")),
            reader=ReaderSpec.from_dict(doc["reader"], path, labels) if doc.get("reader") is not None else None,
            extra={k: deepcopy(v) for k, v in doc.items() if k not in _KNOWN},
        )


_MISSING = object()
_KNOWN = ("format", "labels", "input", "stride", "outputs", "threshold", "model_sha256", "reader")


def _lookup(doc: Dict[str, Any], dotted: str, path: Path, default: Any) -> Any:
    value: Any = doc
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            if default is not _MISSING:
                return default
            raise ModelError(f"{path}: sidecar field '{dotted}' is missing")
        value = value[key]
    return value


def _number_field(doc: Dict[str, Any], dotted: str, path: Path, low: float, high: float,
                  default: Any = _MISSING) -> float:
    """A number strictly between ``low`` and ``high`` (one line naming file and field otherwise)."""
    value = _lookup(doc, dotted, path, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < float(value) < high:
        raise ModelError(f"{path}: sidecar field '{dotted}' is {value!r}: "
                         f"expected a number between {low:g} and {high:g}")
    return float(value)


def _int_field(doc: Dict[str, Any], dotted: str, path: Path, low: int, high: int, default: Any = _MISSING,
               allowed: Tuple[int, ...] = ()) -> int:
    """A whole number in [low, high] (and among ``allowed`` when given)."""
    value = _lookup(doc, dotted, path, default)
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not whole or not low <= value <= high or (allowed and value not in allowed):
        expected = f"one of {', '.join(map(str, allowed))}" if allowed else f"a whole number from {low} to {high}"
        raise ModelError(f"{path}: sidecar field '{dotted}' is {value!r}: expected {expected}")
    return int(value)


def _labels_field(doc: Dict[str, Any], path: Path) -> Dict[int, str]:
    """``{"1": "one", ...}``: positive ids, non-empty distinct names."""
    raw = _lookup(doc, "labels", path, _MISSING)
    if not isinstance(raw, dict) or not raw:
        raise ModelError(f"{path}: sidecar field 'labels' is {raw!r}: expected an object of id: name, "
                         "e.g. {\"1\": \"one\", \"2\": \"two\"}")
    labels: Dict[int, str] = {}
    for key, name in raw.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) > 0) or not isinstance(name, str) or not name:
            raise ModelError(f"{path}: sidecar field 'labels' has {key!r}: {name!r}: expected a positive id and a name")
        labels[int(key)] = name
    if len(set(labels.values())) != len(labels):
        raise ModelError(f"{path}: sidecar field 'labels' names a class twice: {raw}")
    return labels


def sidecar_path(model_path: os.PathLike) -> Path:
    """``models/x.tflite`` and ``models/x_edgetpu.tflite`` -> ``models/x.json``."""
    model_path = Path(model_path)
    stem = model_path.stem[: -len("_edgetpu")] if model_path.stem.endswith("_edgetpu") else model_path.stem
    return model_path.with_name(stem + ".json")
