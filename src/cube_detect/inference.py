"""Run an exported cube_detect model: pre-processing, backends, decoding. No TensorFlow.

The model adapter, as pycoral's: small functions at the model boundary, each doing one thing
-- ``to_gray``, ``letterbox`` (pre-processing), ``make_interpreter`` (a TFLite interpreter on
the CPU or with a delegate), ``decode`` (raw outputs -> sorted ``Detection``s in image pixels,
used by the detector, by training's validation and by export's checks, as ``DecodeSettings``
say) -- and
``load_detector``, which picks the fastest backend that really works, in this order:

1. pycoral with the ``_edgetpu`` model (only if pycoral is really installed and sees a TPU);
2. the TFLite interpreter with the ``libedgetpu.so.1`` delegate and the ``_edgetpu`` model;
3. the TFLite interpreter on the CPU with the int8 model.

The interpreter is LiteRT (``ai_edge_litert``, tflite-runtime's successor, whose int8 XNNPACK
kernels are far faster), or ``tflite_runtime`` where only that is installed.

Each skipped backend's reason is summed up in one line, ``Detector.backend_reason``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from cube_detect.boxes import BBox, sort_left_to_right
from cube_detect.errors import ImageError, ModelError
from cube_detect.labels import read_labels
from cube_detect.modelspec import ModelSpec, sidecar_path
from cube_detect.reader import PROPOSALS_PER_FACE, Reader, edgetpu_twin, load_reader, proposal_threshold, rescore

log = logging.getLogger(__name__)

#: The shipped default model (models/ at the package root, in a source or devel space).
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "cube_detect.tflite"


def default_model() -> Path:
    """The shipped model: beside the sources, else in the installed package's share folder."""
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL
    try:
        import rospkg  # only for installed (catkin install space) packages

        return Path(rospkg.RosPack().get_path("cube_detect")) / "models" / "cube_detect.tflite"
    except Exception:  # no ROS, or package not found: report the source path
        return DEFAULT_MODEL


@dataclass(frozen=True)
class Detection:
    """One face found (pycoral's ``detect.Object``, with the class name)."""

    label: str
    class_id: int
    score: float
    box: BBox  # xmin, ymin, xmax, ymax in original-image pixels

    def to_dict(self) -> dict:
        return {"label": self.label, "id": self.class_id, "score": round(float(self.score), 4),
                "box": [round(float(v), 1) for v in self.box]}


# ----------------------------------------------------------------------------- pre-processing
def _checked_image(image: np.ndarray) -> np.ndarray:
    """A non-empty uint8 HxW, HxWx3 (BGR) or HxWx4 (BGRA) image; HxWx1 becomes HxW."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError(f"expected a uint8 numpy image, got {type(image).__name__} "
                         f"{getattr(image, 'dtype', '')}")
    if image.size == 0:
        raise ImageError("empty image (0 pixels)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2 and not (image.ndim == 3 and image.shape[2] in (3, 4)):
        raise ImageError(f"unsupported image shape {image.shape}")
    return image


def to_gray(image: np.ndarray) -> np.ndarray:
    """HxW or HxWx{1,3,4} uint8 (BGR/BGRA) -> HxW uint8 gray."""
    image = _checked_image(image)
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """HxW or HxWx{1,3,4} uint8 -> HxWx3 uint8 BGR (a gray camera gives three equal channels)."""
    image = _checked_image(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image if image.shape[2] == 3 else cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)


def area_resize(image: np.ndarray, new_w: int, new_h: int, scale: float) -> np.ndarray:
    """``image`` resized to new_w x new_h with OpenCV's INTER_AREA, for the letterbox ``scale``.
    When the scale is 1/k for a whole k and the frame leaves fewer than k columns and rows over
    (640x480 to 213x160: k = 3, one column over), the frame less those last columns and rows:
    OpenCV's block-average path, about 4x faster than its general one (0.13 against 0.51 ms
    here), each model pixel the mean of exactly k x k frame pixels, as the scale says. Any other
    scale (638x482 is 1/3.0125) keeps the general path on the whole frame."""
    h, w = image.shape[:2]
    k = w // new_w
    if (k >= 2 and abs(scale * k - 1) < 1e-9 and h // new_h == k
            and w - k * new_w < k and h - k * new_h < k):
        image = image[:k * new_h, :k * new_w]
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)


def letterbox(image: np.ndarray, width: int, height: int, pad_value: int = 0) -> Tuple[np.ndarray, float]:
    """Scale ``image`` (gray or BGR) to fit width x height keeping its aspect, pad bottom/right.

    Returns the model-sized image and the scale (model pixels per original pixel); a box in
    model pixels maps back by dividing by the scale.
    """
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = area_resize(image, new_w, new_h, scale)
    if (new_w, new_h) == (width, height):
        return resized, scale
    out = np.full((height, width) + image.shape[2:], pad_value, np.uint8)
    out[:new_h, :new_w] = resized
    return out, scale


def model_input(image: np.ndarray, spec: ModelSpec) -> Tuple[np.ndarray, float]:
    """The model-sized uint8 image a model sees (its sidecar says gray or colour, and how to
    letterbox) and the letterbox scale. Training and inference both use this."""
    converted = to_gray(image) if spec.channels == 1 else to_bgr(image)
    return letterbox(converted, spec.width, spec.height, spec.pad_value)


# ----------------------------------------------------------------------------- decoding
#: Class-agnostic NMS: a box that overlaps a better one by more than this IoU is dropped.
NMS_IOU = 0.45


def _knob(default, doc: str):
    """A ``DecodeSettings`` field: its default and what it means (the detector node's doc too)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class DecodeSettings:
    """How ``decode`` turns a model's outputs into detections, as one value.

    Built once where the settings come from -- the detector node's parameters
    (``cube_detect.ros.settings.DetectorSettings`` inherits these fields: each is one private
    parameter and one ``detect.launch`` argument of the same name), the ``detect`` command's
    flags, evaluation's own -- and handed down through ``load_detector`` and ``Detector`` to
    ``decode``. A new decoding setting is one field here, its launch argument and its README row
    (test/test_node_settings.py keeps the three in agreement).
    """

    threshold: Optional[float] = _knob(None, "score threshold; None: the model's own (its sidecar's threshold)")
    max_cubes: int = _knob(4, "most faces reported per image")
    nms_iou: float = _knob(NMS_IOU, "overlap (IoU) above which the lower-scored of two faces is dropped, "
                                    "whatever their classes")
    sort_axis: str = _knob("x", "x: left to right; y: top to bottom (camera mounted sideways)")

    def threshold_for(self, spec: ModelSpec) -> float:
        """The score threshold these settings mean for the model ``spec`` describes."""
        return spec.threshold if self.threshold is None else float(self.threshold)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> List[int]:
    """Indices kept by greedy non-maximum suppression, best first."""
    if len(boxes) == 0:
        return []
    return list(cv2.dnn.NMSBoxes(
        [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes],
        [float(s) for s in scores], 0.0, float(iou_threshold)).reshape(-1))


def decode_outputs(heatmap: np.ndarray, boxes: np.ndarray, stride: int, threshold: float,
                   max_detections: int, iou_threshold: float = NMS_IOU):
    """Peaks of ``heatmap`` (rows, cols, classes) -> (class_index, score, box in model pixels).

    A peak is a cell that is the maximum of its 3x3 neighbourhood in its class channel and
    scores at least ``threshold``. Its box is the cell centre minus/plus the regressed
    left/top/right/bottom distances (``boxes``, in cells). One face carries one digit, so
    NMS is class-agnostic.
    """
    dilated = cv2.dilate(heatmap.astype(np.float32), np.ones((3, 3), np.uint8))
    if dilated.ndim == 2:  # cv2 drops a single trailing channel
        dilated = dilated[:, :, None]
    rows, cols, classes = np.nonzero((heatmap >= dilated) & (heatmap >= threshold))
    if len(rows) == 0:
        return []
    scores = heatmap[rows, cols, classes].astype(np.float32)
    ltrb = boxes[rows, cols].astype(np.float32) * stride
    cx, cy = (cols + 0.5) * stride, (rows + 0.5) * stride
    xyxy = np.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], axis=1)
    order = np.argsort(-scores)[: max(4 * max_detections, 32)]
    keep = [order[i] for i in nms(xyxy[order], scores[order], iou_threshold)][:max_detections]
    return [(int(classes[k]), float(scores[k]), tuple(float(v) for v in xyxy[k])) for k in keep]


def decode(heatmap: np.ndarray, boxes: np.ndarray, spec: ModelSpec, settings: DecodeSettings = DecodeSettings(),
           scale: float = 1.0, image_size: Optional[Tuple[int, int]] = None) -> List[Detection]:
    """Dequantized outputs of one image -> ``Detection``s sorted in the arm's order, as
    ``settings`` say (threshold None: the model's own).

    Boxes are divided by ``scale`` (the letterbox's model pixels per image pixel; 1 keeps model
    pixels) and, when ``image_size`` (height, width) is given, clipped to the image; a box
    left under one pixel wide or high is dropped. Class index -> the sidecar's id and name.
    """
    ids = spec.class_ids
    detections = []
    for cls, score, xyxy in decode_outputs(heatmap, boxes, spec.stride, settings.threshold_for(spec),
                                           settings.max_cubes, settings.nms_iou):
        box = BBox(*xyxy).scale(1.0 / scale)
        if image_size is not None:
            box = box.clip(image_size[1], image_size[0])
        if box.width < 1 or box.height < 1:
            continue
        detections.append(Detection(spec.labels[ids[cls]], ids[cls], score, box))
    return sort_left_to_right(detections, settings.sort_axis)


# ----------------------------------------------------------------------------- backends
def _tflite_interpreter_class():
    """(Interpreter, load_delegate) of LiteRT, else of tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, load_delegate
        except ImportError as exc:  # the robot's requirements install it; say how if they did not
            raise ModelError("no TFLite interpreter (ai-edge-litert or tflite-runtime) is installed: "
                             "pip install -r requirements/runtime.txt") from exc
    return Interpreter, load_delegate


def runtime_name() -> str:
    """Which TFLite interpreter package ``load_detector`` uses, with its version."""
    from importlib.metadata import PackageNotFoundError, version

    package = _tflite_interpreter_class()[0].__module__.split(".")[0]
    try:
        return f"{package} {version(package.replace('_', '-'))}"
    except PackageNotFoundError:
        return package


def _pycoral_interpreter(edgetpu_model: Path):
    if importlib.util.find_spec("pycoral") is None:
        raise RuntimeError("pycoral is not installed")
    from pycoral.utils import edgetpu  # Google's pycoral (never the unrelated PyPI package)

    if not hasattr(edgetpu, "make_interpreter"):
        raise RuntimeError("the installed 'pycoral' is not Google's Coral library")
    if not edgetpu.list_edge_tpus():
        raise RuntimeError("pycoral sees no Edge TPU")
    return edgetpu.make_interpreter(str(edgetpu_model))


def make_interpreter(model_path: Union[str, os.PathLike], num_threads: int = 1, delegate: Optional[str] = None):
    """A TFLite interpreter (LiteRT, else tflite-runtime) for ``model_path``, on the CPU or
    through the named delegate library (e.g. ``libedgetpu.so.1``, which raises RuntimeError
    when it cannot be loaded). Not yet allocated. ``CUBE_DETECT_XNNPACK=0`` in the environment
    runs the builtin kernels without the default XNNPACK delegate (what tflite-runtime 2.13 runs
    on arm64; `make test-arm64` compares it with x86 so)."""
    Interpreter, load_delegate = _tflite_interpreter_class()
    delegates = []
    if delegate:
        try:
            delegates.append(load_delegate(delegate))
        except (ValueError, OSError) as exc:
            raise RuntimeError(f"{delegate} delegate not available ({str(exc).splitlines()[0]})") from exc
    options = {}
    if os.environ.get("CUBE_DETECT_XNNPACK") == "0":
        resolvers = importlib.import_module(Interpreter.__module__).OpResolverType
        options["experimental_op_resolver_type"] = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_path=str(model_path), experimental_delegates=delegates or None, num_threads=num_threads,
                       **options)


class Detector:
    """A loaded model on one backend. ``detect(image)`` -> detections, decoded as ``decoding`` says,
    and read again by ``reader`` (``cube_detect.reader``) when the model has one."""

    def __init__(self, interpreter, spec: ModelSpec, backend: str, backend_reason: str,
                 model_path: Path, decoding: DecodeSettings = DecodeSettings(), reader: Optional[Reader] = None):
        self.interpreter, self.spec, self.model_path = interpreter, spec, model_path
        self.backend, self.backend_reason = backend, backend_reason
        self.decoding = decoding
        self.reader = reader
        interpreter.allocate_tensors()
        self._check_io()
        self.last_timing_ms: Dict[str, float] = {}

    @property
    def threshold(self) -> float:
        """The score threshold in use: the settings', else the one export calibrated (sidecar)."""
        return self.decoding.threshold_for(self.spec)

    def _check_io(self) -> None:
        inp = self.interpreter.get_input_details()
        if len(inp) != 1:
            raise ModelError(f"{self.model_path}: expected 1 input tensor, found {len(inp)}")
        self._input = inp[0]
        expected = (1, self.spec.height, self.spec.width, self.spec.channels)
        if tuple(self._input["shape"]) != expected or self._input["dtype"] != np.uint8:
            raise ModelError(f"{self.model_path}: input is {tuple(self._input['shape'])} "
                             f"{np.dtype(self._input['dtype']).name}, its sidecar says {expected} uint8")
        # The converter orders outputs as it likes: tell them apart by channel count.
        outputs = self.interpreter.get_output_details()
        n = self.spec.num_classes
        heat = [o for o in outputs if int(o["shape"][-1]) == n]
        boxes = [o for o in outputs if int(o["shape"][-1]) == 4]
        if n == 4 or len(outputs) != 2 or len(heat) != 1 or len(boxes) != 1:
            shapes = [tuple(o["shape"]) for o in outputs]
            raise ModelError(f"{self.model_path}: outputs {shapes} do not match {n} labels "
                             f"({', '.join(self.spec.labels.values())}) + 4 box distances")
        self._heatmap, self._boxes = heat[0], boxes[0]
        rows, cols = self.spec.grid
        if tuple(self._heatmap["shape"][1:3]) != (rows, cols):
            raise ModelError(f"{self.model_path}: output grid {tuple(self._heatmap['shape'][1:3])} "
                             f"is not the sidecar's {(rows, cols)}")
        scale, zero = self._input["quantization"]
        # Inputs exported with scale 1/255 and zero point 0 take raw pixels: no arithmetic.
        self._input_identity = abs(scale * 255.0 - 1.0) < 1e-6 and zero == 0
        self._input_quant = (scale, zero)

    def _dequantize(self, detail) -> np.ndarray:
        data = self.interpreter.get_tensor(detail["index"])[0]
        scale, zero = detail["quantization"]
        if scale == 0:
            return data.astype(np.float32)
        return (data.astype(np.float32) - zero) * scale

    def preprocess(self, image: np.ndarray) -> Tuple[np.ndarray, float, Tuple[int, int]]:
        boxed, scale = model_input(image, self.spec)
        if not self._input_identity:
            s, z = self._input_quant
            boxed = np.clip(np.round(boxed.astype(np.float32) / 255.0 / s + z), 0, 255).astype(np.uint8)
        return boxed, scale, (image.shape[0], image.shape[1])

    def raw_outputs(self, boxed: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Run the network on a model-sized uint8 image; dequantized (heatmap, boxes)."""
        self.interpreter.set_tensor(self._input["index"], boxed.reshape(self._input["shape"]))
        self.interpreter.invoke()
        return self._dequantize(self._heatmap), self._dequantize(self._boxes)

    def warm_up(self) -> None:
        """One inference on a blank frame: the first one is slow (an Edge TPU loads the model
        into its memory, XNNPACK packs its weights), and a robot's first cycle should not be."""
        self.raw_outputs(np.full(tuple(self._input["shape"][1:]), self.spec.pad_value, np.uint8))

    def detect(self, image: np.ndarray, threshold: Optional[float] = None) -> List[Detection]:
        """Detections in image pixels, decoded as ``decoding`` says (``threshold``: this call's own,
        e.g. a low one for a precision-recall curve). With a reader, the network proposes faces at
        the threshold's square and each is read again from the full-resolution frame: its label
        is the reader's, its score the rescored one (:func:`cube_detect.reader.rescore`)."""
        t0 = time.perf_counter()
        if self.spec.channels == 1 or self.reader is not None:  # the gray frame once, for both
            gray = to_gray(image)
            image = gray if self.spec.channels == 1 else image
        boxed, scale, (h, w) = self.preprocess(image)
        t1 = time.perf_counter()
        heatmap, boxes = self.raw_outputs(boxed)
        t2 = time.perf_counter()
        settings = self.decoding if threshold is None else replace(self.decoding, threshold=threshold)
        if self.reader is None:
            result = decode(heatmap, boxes, self.spec, settings, scale, (h, w))
        else:
            wanted = settings.threshold_for(self.spec)
            # Twice as many proposals as faces wanted: the reader may drop some of the detector's best.
            proposals = decode(heatmap, boxes, self.spec, replace(settings, threshold=proposal_threshold(wanted),
                                                                  max_cubes=PROPOSALS_PER_FACE * settings.max_cubes),
                               scale, (h, w))
        t3 = time.perf_counter()
        timing = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3}
        if self.reader is not None:
            result = self._read(gray, proposals, wanted, settings)
            timing["reader"] = (time.perf_counter() - t3) * 1e3
        timing["total"] = (time.perf_counter() - t0) * 1e3
        self.last_timing_ms = timing
        return result

    def _read(self, gray: np.ndarray, proposals: List[Detection], threshold: float,
              settings: DecodeSettings) -> List[Detection]:
        """The proposals the reader keeps at ``threshold`` (read from the full-resolution ``gray``
        frame), relabelled and rescored: the best ``max_cubes`` of them by their new score, in the
        arm's order."""
        if not proposals:
            return []
        reader, ids, kept = self.reader, self.spec.class_ids, []
        assert reader is not None
        for proposal in proposals:
            digit, score = rescore(proposal.score, reader.read(gray, proposal.box))
            if score >= threshold:
                kept.append(Detection(self.spec.labels[ids[digit]], ids[digit], score, proposal.box))
        kept = sorted(kept, key=lambda d: -d.score)[:settings.max_cubes]
        return sort_left_to_right(kept, settings.sort_axis)


def load_detector(model_path=None, edgetpu_model_path=None, labels_path=None, backend: str = "auto",
                  num_threads: int = 1, decoding: DecodeSettings = DecodeSettings(), reader: bool = True) -> Detector:
    """Load a model on the best backend that works (see the module docstring), with the face
    reader its sidecar names (``reader=False``: the detector alone, its reader not even looked
    for: what ``train-reader`` proposes with, so that it can replace a missing or changed one).

    ``backend``: ``auto`` (Edge TPU if possible, else CPU), ``edgetpu`` (fail if no TPU) or
    ``cpu``. ``decoding``: how its detections are decoded (threshold None: the model's
    calibrated default, its sidecar's ``threshold``).
    Raises ``ModelError`` naming the file for a missing or corrupt model, a missing or bad
    sidecar, a labels file that does not match the model, or a face reader that is missing, not
    the one the sidecar describes (sha256) or not a TFLite model.
    """
    if backend not in ("auto", "edgetpu", "cpu"):
        raise ModelError(f"backend must be auto, edgetpu or cpu, got {backend!r}")
    model_path = Path(model_path) if model_path else default_model()
    if model_path.stem.endswith("_edgetpu"):  # given the compiled model: the CPU twin sits beside it
        edgetpu_model_path = edgetpu_model_path or model_path
        model_path = model_path.with_name(model_path.stem[: -len("_edgetpu")] + ".tflite")
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    spec = ModelSpec.load(sidecar_path(model_path))
    if spec.model_sha256 and hashlib.sha256(model_path.read_bytes()).hexdigest() != spec.model_sha256:
        raise ModelError(f"{sidecar_path(model_path)}: describes another model than {model_path.name} "
                         "(model_sha256 differs: an interrupted export? export again)")
    if labels_path:
        labels = read_labels(labels_path)
        if labels != spec.labels:
            raise ModelError(f"{labels_path}: labels {labels} do not match the model's "
                             f"{spec.labels} ({sidecar_path(model_path)})")
    edgetpu_model = Path(edgetpu_model_path) if edgetpu_model_path else edgetpu_twin(model_path)

    skipped: Dict[str, str] = {}
    attempts = []
    if backend in ("auto", "edgetpu"):
        if edgetpu_model.is_file():
            attempts += [("edgetpu", "pycoral", lambda: _pycoral_interpreter(edgetpu_model)),
                         ("edgetpu", "libedgetpu delegate",
                          lambda: make_interpreter(edgetpu_model, num_threads, "libedgetpu.so.1"))]
        else:
            skipped["edgetpu"] = f"no Edge TPU model ({edgetpu_model.name} not found)"
    if backend in ("auto", "cpu"):
        attempts.append(("cpu", runtime_name(), lambda: make_interpreter(model_path, num_threads)))

    for name, how, make in attempts:
        used = edgetpu_model if name == "edgetpu" else model_path
        why_not = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        reason = f"{name} via {how} ({used.name})" + (f"; Edge TPU skipped: {why_not}" if why_not else "")
        loaded = False
        try:
            # An Edge TPU can fail at any of these: importing pycoral (libedgetpu missing),
            # loading the delegate, allocating, or the first invoke (warm_up): each falls back.
            detector = Detector(make(), spec, name, reason, used, decoding)
            loaded = True
            detector.warm_up()
        except ModelError:
            raise
        except (RuntimeError, ValueError, OSError, ImportError) as exc:
            if name == "cpu":
                what = "fails at its first inference on the CPU" if loaded else "not a valid TFLite model"
                raise ModelError(f"{model_path}: {what} ({str(exc).splitlines()[0]})") from exc
            skipped[how] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        if spec.reader is not None and reader:  # a bad reader is one ModelError line, never a silent detector alone
            loaded_reader = load_reader(spec.reader, model_path, sidecar_path(model_path), make_interpreter,
                                        name == "edgetpu", num_threads)
            detector.reader = loaded_reader
            reason += f"; face reader on the {loaded_reader.backend} ({loaded_reader.path.name})"
            detector.backend_reason = reason
        log.info("inference backend: %s", reason)
        return detector
    raise ModelError(f"{edgetpu_model}: no Edge TPU backend works ("
                     + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ")")
