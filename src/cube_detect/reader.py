"""The face reader: a second small network that reads each face the detector proposes. No TensorFlow.

The detector sees the frame at its input size (224x168 for the shipped model: a face is 20-40
pixels there); the reader sees each proposed face again from the **full-resolution gray frame**,
cut region first (:func:`crop`: a square of ``context`` times the box's longer side, replicated
borders, resized to ``side`` x ``side``). It answers three probabilities, none / one / two (its
classes, in the order the sidecar names them), and the face is rescored (:func:`rescore`):

* its label is the reader's likelier digit;
* its score is sqrt(detector score x (1 - p_none)): a face the reader is sure of keeps the square
  root of the detector's score, a face it calls "none" drops. A face can therefore pass the
  threshold ``t`` only when the detector scored it at least ``t`` squared, so the detector
  proposes at ``t**2`` (:func:`proposal_threshold`).

The sidecar of the detector names its reader (``reader``: file, sha256, crop, classes, rule);
``inference.load_detector`` loads both. Issue #19 measured it (README, "The face reader").
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from cube_detect.errors import ModelError

log = logging.getLogger(__name__)

#: The reader's crop: ``SIDE`` x ``SIDE`` gray pixels, ``CONTEXT`` x the box's longer side.
SIDE = 48
CONTEXT = 1.25
#: The one rescoring rule there is (the sidecar names it, so a later one cannot be misread).
RULE = "sqrt(detector score x (1 - p_none))"
NONE = "none"
#: The lowest score the detector proposes at, whatever the threshold: below it a face is noise.
MIN_PROPOSAL = 0.01
#: Proposals read per face reported (``max_cubes``): the reader may drop some of the detector's best.
PROPOSALS_PER_FACE = 2


def reader_path(model_path: Path) -> Path:
    """``models/x.tflite`` -> ``models/x_reader.tflite`` (the name export and ``train-reader`` write)."""
    return model_path.with_name(model_path.stem + "_reader.tflite")


def crop(gray: np.ndarray, box: Sequence[float], side: int = SIDE, context: float = CONTEXT) -> np.ndarray:
    """The reader's view of ``box`` (x1, y1, x2, y2 in ``gray``'s pixels): the square of ``context``
    times its longer side around its centre, cut first (borders replicated where it leaves the
    frame), then resized to ``side`` x ``side`` (INTER_AREA when shrinking). Training and inference
    both use this."""
    import cv2  # here: the sidecar's ReaderSpec (modelspec) needs no OpenCV

    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1, 1.0) * context / 2
    left, top, n = int(round(cx - half)), int(round(cy - half)), max(int(round(2 * half)), 2)
    h, w = gray.shape[:2]
    # A box wholly outside the frame (a bad caller) still gets a crop: of the nearest edge.
    left, top = min(max(left, -n + 1), w - 1), min(max(top, -n + 1), h - 1)
    roi = gray[max(top, 0):min(top + n, h), max(left, 0):min(left + n, w)]
    roi = cv2.copyMakeBorder(roi, max(-top, 0), max(top + n - h, 0), max(-left, 0), max(left + n - w, 0),
                             cv2.BORDER_REPLICATE)
    return cv2.resize(roi, (side, side), interpolation=cv2.INTER_AREA if n > side else cv2.INTER_LINEAR)


def proposal_threshold(threshold: float) -> float:
    """The detector score a face needs to reach ``threshold`` after the reader: its square (at
    least :data:`MIN_PROPOSAL`)."""
    return max(threshold * threshold, MIN_PROPOSAL)


def rescore(detector_score: float, probabilities: np.ndarray) -> Tuple[int, float]:
    """(index among the digits, new score) of a face from the reader's (p_none, p_digit...)."""
    digit = int(np.argmax(probabilities[1:]))
    return digit, math.sqrt(max(float(detector_score), 0.0) * max(1.0 - float(probabilities[0]), 0.0))


@dataclass(frozen=True)
class ReaderSpec:
    """The sidecar's ``reader`` field: which file, which crop, which classes, which rule."""

    file: str
    sha256: str
    side: int = SIDE
    context: float = CONTEXT
    classes: Tuple[str, ...] = (NONE, "one", "two")
    rule: str = RULE
    extra: Tuple[Tuple[str, Any], ...] = ()  # how it was trained (figures): kept, not read

    def to_dict(self) -> Dict[str, Any]:
        doc = {"file": self.file, "sha256": self.sha256,
               "crop": {"side": self.side, "context": self.context, "from": "full-resolution gray frame, region first"},
               "classes": list(self.classes), "rule": self.rule}
        doc.update(dict(self.extra))
        return doc

    @classmethod
    def from_dict(cls, doc: Any, path: Path, labels: Dict[int, str]) -> ReaderSpec:
        """One ModelError naming the sidecar ``path`` and the field for anything wrong."""
        def bad(field: str, value: Any, expected: str) -> ModelError:
            return ModelError(f"{path}: sidecar field 'reader.{field}' is {value!r}: expected {expected}")

        if not isinstance(doc, dict):
            raise ModelError(f"{path}: sidecar field 'reader' is {doc!r}: expected an object (file, sha256, crop, "
                             "classes, rule)")
        file = doc.get("file")
        if not isinstance(file, str) or not file or Path(file).name != file or not file.endswith(".tflite"):
            raise bad("file", file, "a .tflite file name beside the model")
        sha = doc.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise bad("sha256", sha, "the reader file's sha256 (64 hex digits)")
        crop_doc = doc.get("crop")
        if not isinstance(crop_doc, dict):
            raise bad("crop", crop_doc, "an object {\"side\": 48, \"context\": 1.25}")
        side = crop_doc.get("side")
        if isinstance(side, bool) or not isinstance(side, int) or not 8 <= side <= 512:
            raise bad("crop.side", side, "a whole number from 8 to 512")
        context = crop_doc.get("context")
        if isinstance(context, bool) or not isinstance(context, (int, float)) or not 1.0 <= context <= 4.0:
            raise bad("crop.context", context, "a number from 1 to 4")
        classes = doc.get("classes")
        wanted = [NONE] + [labels[k] for k in sorted(labels)]
        if classes != wanted:
            raise bad("classes", classes, f"{wanted} (none, then the model's labels in id order)")
        if doc.get("rule") != RULE:
            raise bad("rule", doc.get("rule"), repr(RULE))
        known = ("file", "sha256", "crop", "classes", "rule")
        return cls(file, sha, int(side), float(context), tuple(classes), RULE,
                   tuple((k, v) for k, v in doc.items() if k not in known))


class Reader:
    """A loaded reader on one interpreter: ``read(gray, box)`` -> probabilities (none, digits...)."""

    def __init__(self, interpreter, spec: ReaderSpec, path: Path, backend: str):
        self.interpreter, self.spec, self.path, self.backend = interpreter, spec, path, backend
        interpreter.allocate_tensors()
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        expected = (1, spec.side, spec.side, 1)
        if len(inputs) != 1 or tuple(inputs[0]["shape"]) != expected or inputs[0]["dtype"] != np.uint8:
            found = [(tuple(i["shape"]), np.dtype(i["dtype"]).name) for i in inputs]
            raise ModelError(f"{path}: reader input is {found}, its sidecar says {expected} uint8")
        if len(outputs) != 1 or tuple(outputs[0]["shape"]) != (1, len(spec.classes)):
            raise ModelError(f"{path}: reader output is {[tuple(o['shape']) for o in outputs]}, its sidecar names "
                             f"{len(spec.classes)} classes ({', '.join(spec.classes)})")
        self._input, self._output = inputs[0], outputs[0]
        scale, zero = self._input["quantization"]
        self._input_identity = abs(scale * 255.0 - 1.0) < 1e-6 and zero == 0
        self._input_quant = (scale, zero)

    def read_crop(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities (classes' order) of one ``side`` x ``side`` uint8 crop."""
        if not self._input_identity:
            s, z = self._input_quant
            pixels = np.clip(np.round(pixels.astype(np.float32) / 255.0 / s + z), 0, 255).astype(np.uint8)
        self.interpreter.set_tensor(self._input["index"], pixels.reshape(self._input["shape"]))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._output["index"])[0]
        scale, zero = self._output["quantization"]
        return raw.astype(np.float32) if scale == 0 else (raw.astype(np.float32) - zero) * scale

    def read(self, gray: np.ndarray, box: Sequence[float]) -> np.ndarray:
        return self.read_crop(crop(gray, box, self.spec.side, self.spec.context))

    def warm_up(self) -> None:
        self.read_crop(np.zeros((self.spec.side, self.spec.side), np.uint8))


def check_file(spec: ReaderSpec, model_path: Path, sidecar: Path) -> Path:
    """The reader file ``spec`` names beside ``model_path``: exists and is the one described."""
    path = model_path.with_name(spec.file)
    if not path.is_file():
        raise ModelError(f"{path}: face reader not found (named by {sidecar.name}'s 'reader.file'; copy it beside "
                         f"{model_path.name}, or train it: python -m cube_detect train-reader)")
    if hashlib.sha256(path.read_bytes()).hexdigest() != spec.sha256:
        raise ModelError(f"{sidecar}: describes another face reader than {path.name} (reader.sha256 differs: an "
                         "interrupted train-reader? run it again)")
    return path


def edgetpu_twin(path: Path) -> Path:
    """``models/x.tflite`` -> ``models/x_edgetpu.tflite``: what ``edgetpu_compiler`` writes (a
    detector's and a reader's alike)."""
    return path.with_name(path.stem + "_edgetpu.tflite")


def load_reader(spec: ReaderSpec, model_path: Path, sidecar: Path, make_interpreter, on_edgetpu: bool,
                num_threads: int = 1) -> Reader:
    """The reader on the detector's backend: its Edge TPU twin when the detector runs on the TPU
    and the twin is there (else the CPU, and the reason in one log line)."""
    path = check_file(spec, model_path, sidecar)
    twin = edgetpu_twin(path)
    if on_edgetpu:
        if twin.is_file():
            try:
                reader = Reader(make_interpreter(twin, num_threads, "libedgetpu.so.1"), spec, twin, "edgetpu")
                reader.warm_up()
                return reader
            except (RuntimeError, ValueError, OSError) as exc:
                log.info("face reader on the CPU: its Edge TPU twin %s fails (%s)", twin.name,
                         str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        else:
            log.info("face reader on the CPU: no Edge TPU twin (%s not found)", twin.name)
    try:
        reader = Reader(make_interpreter(path, num_threads), spec, path, "cpu")
        reader.warm_up()
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: face reader is not a valid TFLite model ({str(exc).splitlines()[0]})") from exc
    return reader
