"""What inference needs to know about a model, carried beside it in ``NAME.json``.

Training writes it, export copies it next to the ``.tflite`` file, inference reads it: one
source of truth for labels, input size, letterboxing and the output layout, so training and
inference cannot drift apart. No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple

from cube_detect.errors import ModelError
from cube_detect.labels import LABELS, atomic_write_text

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

    def to_json(self) -> str:
        data = asdict(self)
        extra = data.pop("extra")
        doc = {
            "format": FORMAT,
            "labels": {str(k): v for k, v in sorted(self.labels.items())},
            "input": {"width": self.width, "height": self.height, "channels": self.channels,
                      "resize": "letterbox", "pad_value": self.pad_value, "range": "uint8 pixels"},
            "stride": self.stride,
            "threshold": self.threshold,
            "outputs": {"heatmap": "sigmoid score per class and cell, channels in label-id order",
                        "boxes": "left, top, right, bottom distances from the cell centre, in cells"},
        }
        doc.update(extra)
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"

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
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise ModelError(f"{path}: not a {FORMAT} sidecar (format={found!r})")
        try:
            inp = doc["input"]
            labels = {int(k): str(v) for k, v in doc["labels"].items()}
            extra = {k: v for k, v in doc.items()
                     if k not in ("format", "labels", "input", "stride", "outputs", "threshold")}
            threshold = float(doc.get("threshold", 0.5))
            if not 0.0 < threshold < 1.0:
                raise ValueError(f"threshold {threshold} is not between 0 and 1")
            return cls(width=int(inp["width"]), height=int(inp["height"]), channels=int(inp["channels"]),
                       stride=int(doc["stride"]), labels=labels, pad_value=int(inp.get("pad_value", 0)),
                       threshold=threshold, extra=extra)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: model sidecar is missing or has a bad field: {exc}") from exc


def sidecar_path(model_path: os.PathLike) -> Path:
    """``models/x.tflite`` and ``models/x_edgetpu.tflite`` -> ``models/x.json``."""
    model_path = Path(model_path)
    stem = model_path.stem[: -len("_edgetpu")] if model_path.stem.endswith("_edgetpu") else model_path.stem
    return model_path.with_name(stem + ".json")
