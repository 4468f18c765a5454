"""The detectors users would otherwise run, for `make bench`'s peer rows.

What the course's seeds teach, rebuilt here with untrained weights (``weights=None``: nothing is
downloaded; latency does not depend on the weights' values) and timed on the same 640x480
frames, in the same run, on 1 CPU thread, each with the pre- and post-processing it needs:

- ``ssd_mobilenet_v2_300_int8`` (seed 000's SSD MobileNet V2 300x300, quantized, Coral
  notebook): Keras MobileNetV2 (alpha 1.0) at 300x300 with the TF OD API's SSD layout (features
  of ``block_13_expand_relu`` 19x19 and ``out_relu`` 10x10, four extra 1x1 + 3x3/2 layers down
  to 1x1, 1x1 box and class predictors, 3 + 5x6 anchors per cell: 1917 anchors, sigmoid scores)
  for our 2 classes; full int8 TFLite through ``cube_detect.export.convert`` (our converter
  path, uint8 in and out) and run on our interpreter (``cube_detect.inference.make_interpreter``,
  LiteRT). Pre: resize to 300x300 (stretched, as the OD API's fixed_shape_resizer), BGR->RGB.
  Post (the model's TFLite_Detection_PostProcess op, which full-int8 conversion cannot keep, in
  numpy): decode the 1917 anchor offsets, top 100 scores, NMS, back to image pixels.
- ``faster_rcnn_resnet50_640_float`` (seed 004's TF OD API Faster R-CNN ResNet-50 640x640):
  float TensorFlow (tf.function), Keras ResNet50 to ``conv4_block6_out`` (stride 16: the
  first-stage feature extractor) at 640x640 plus the RPN head (3x3x512 conv, objectness and box
  convolutions for 12 anchors per cell). Pre: keep-aspect resize and pad to 640x640, mean
  subtraction. Post: decode the 19200 anchors, top 6000, NMS 0.7 to 300 proposals. A **lower
  bound** of the real model: its second stage (ResNet-50's conv5 block on each of the 300
  proposals' 14x14 crops, then the box classifier) is not run.

Built models are cached in ``bench/peer_models/`` (gitignored), named after ``BUILD`` and the
TensorFlow version: a second `make bench` loads them. `make test` never builds them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import cv2
import numpy as np

CACHE = Path(__file__).resolve().parent / "peer_models"
BUILD = 1  # bump when a builder changes: cached models of another build are not used
NUM_CLASSES = 2  # one, two: what a user retrains on
SSD = "ssd_mobilenet_v2_300_int8"
FRCNN = "faster_rcnn_resnet50_640_float"
PEERS = (SSD, FRCNN)

#: What each row stands for (README table).
DESCRIPTIONS = {
    SSD: "SSD MobileNet V2 300×300, full int8 TFLite, same converter and interpreter as ours "
         "(seed 000, Coral); untrained weights",
    FRCNN: "Faster R-CNN ResNet-50 640×640, float TF: backbone to conv4 + RPN + proposal NMS only, "
           "a **lower bound** of seed 004's model (its second stage is not run); untrained weights",
}


def _cached(name: str, suffix: str) -> Path:
    import tensorflow as tf

    return CACHE / f"{name}.build{BUILD}.tf{tf.__version__}{suffix}"


def _seed() -> None:
    import keras

    keras.utils.set_random_seed(0)


# ------------------------------------------------------------------------ SSD MobileNet V2
def ssd_anchors(grids=(19, 10, 5, 3, 2, 1), min_scale: float = 0.2, max_scale: float = 0.95) -> np.ndarray:
    """(1917, 4) anchors (cy, cx, h, w), normalized: the OD API's multiple_grid_anchor_generator
    as ssd_mobilenet_v2 configures it (3 boxes in the lowest layer, 6 elsewhere), in the
    predictor's order (cell by cell, anchors within a cell)."""
    count = len(grids)
    scales = [min_scale + (max_scale - min_scale) * i / (count - 1) for i in range(count)] + [1.0]
    anchors = []
    for layer, size in enumerate(grids):
        if layer == 0:
            boxes = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            boxes = [(scales[layer], r) for r in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)]
            boxes.append((math.sqrt(scales[layer] * scales[layer + 1]), 1.0))
        for row in range(size):
            for col in range(size):
                cy, cx = (row + 0.5) / size, (col + 0.5) / size
                for scale, ratio in boxes:
                    anchors.append((cy, cx, scale / math.sqrt(ratio), scale * math.sqrt(ratio)))
    return np.asarray(anchors, np.float32)


def build_ssd_mobilenet_v2() -> Any:
    """The float Keras network: [0, 1] RGB 300x300 in, (scores (1, 1917, 3), boxes (1, 1917, 4)) out."""
    import keras
    from keras import layers

    _seed()
    inputs = keras.Input((300, 300, 3), batch_size=1)
    scaled = layers.Rescaling(2.0, offset=-1.0)(inputs)  # MobileNetV2 expects [-1, 1]
    backbone = keras.applications.MobileNetV2(input_tensor=scaled, alpha=1.0, include_top=False, weights=None)
    features = [backbone.get_layer("block_13_expand_relu").output, backbone.output]

    def conv_bn_relu6(x, depth, kernel, stride=1):
        x = layers.Conv2D(depth, kernel, strides=stride, padding="same", use_bias=False)(x)
        return layers.ReLU(6.0)(layers.BatchNormalization()(x))

    x = features[-1]
    for depth in (512, 256, 256, 128):  # layer_depth of the OD API's ssd_mobilenet_v2 feature maps
        x = conv_bn_relu6(conv_bn_relu6(x, depth // 2, 1), depth, 3, stride=2)
        features.append(x)
    scores, boxes = [], []
    for layer, feature in enumerate(features):
        anchors = 3 if layer == 0 else 6
        scores.append(layers.Reshape((-1, NUM_CLASSES + 1))(layers.Conv2D(anchors * (NUM_CLASSES + 1), 1)(feature)))
        boxes.append(layers.Reshape((-1, 4))(layers.Conv2D(anchors * 4, 1)(feature)))
    score = layers.Activation("sigmoid")(layers.Concatenate(axis=1)(scores))
    box = layers.Concatenate(axis=1)(boxes)
    return keras.Model(inputs, [score, box], name=SSD)


def ssd_input(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.resize(frame, (300, 300), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)


def ssd_model(frames: Sequence[np.ndarray]) -> Path:
    """The int8 .tflite, from the cache or built (a minute or two: conversion, calibration)."""
    from cube_detect.export import convert
    from cube_detect.files import atomic_write_bytes

    path = _cached(SSD, ".tflite")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = [(ssd_input(f), None) for f in frames]  # calibration: the frames it will see
        atomic_write_bytes(path, convert(build_ssd_mobilenet_v2(), samples, quantize=True))
    return path


def ssd_detector(frames: Sequence[np.ndarray], threshold: float = 0.5, max_detections: int = 10
                 ) -> Callable[[np.ndarray], List[Tuple[int, float, Tuple[float, float, float, float]]]]:
    """frame -> [(class index, score, (x1, y1, x2, y2) image pixels)]: pre + int8 model + post."""
    from cube_detect.inference import make_interpreter

    interp = make_interpreter(ssd_model(frames), num_threads=1)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    outs = interp.get_output_details()
    score_out = next(o for o in outs if o["shape"][-1] == NUM_CLASSES + 1)
    box_out = next(o for o in outs if o["shape"][-1] == 4)
    anchors = ssd_anchors()

    def dequantize(detail) -> np.ndarray:
        scale, zero = detail["quantization"]
        raw = interp.get_tensor(detail["index"])[0]
        return (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)

    def detect(frame: np.ndarray):
        height, width = frame.shape[:2]
        interp.set_tensor(inp["index"], ssd_input(frame)[None])
        interp.invoke()
        scores, codes = dequantize(score_out)[:, 1:], dequantize(box_out)
        best, cls = scores.max(axis=1), scores.argmax(axis=1)
        top = np.argpartition(-best, 100)[:100]  # TFLite_Detection_PostProcess: max 100 before NMS
        a, c = anchors[top], codes[top]
        cy = c[:, 0] / 10.0 * a[:, 2] + a[:, 0]  # center-size coding, scales 10, 10, 5, 5
        cx = c[:, 1] / 10.0 * a[:, 3] + a[:, 1]
        h = np.exp(c[:, 2] / 5.0) * a[:, 2]
        w = np.exp(c[:, 3] / 5.0) * a[:, 3]
        xywh = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height], axis=1)
        # As the op: NMS over all 100 (score threshold ~0), the best max_detections; then ours.
        keep = cv2.dnn.NMSBoxes(xywh.tolist(), best[top].tolist(), 0.0, 0.6, top_k=max_detections)
        return [(int(cls[top][i]), float(best[top][i]),
                 (float(xywh[i, 0]), float(xywh[i, 1]), float(xywh[i, 0] + xywh[i, 2]), float(xywh[i, 1] + xywh[i, 3])))
                for i in np.asarray(keep, int).reshape(-1) if best[top][i] >= threshold]

    return detect


# ------------------------------------------------------------------------ Faster R-CNN ResNet-50
RPN_STRIDE = 16
RPN_SCALES = (0.25, 0.5, 1.0, 2.0)  # x 256 px: the OD API's grid_anchor_generator
RPN_RATIOS = (0.5, 1.0, 2.0)
MEAN_RGB = np.array([123.68, 116.779, 103.939], np.float32)


def build_faster_rcnn_first_stage() -> Any:
    """Float Keras network: 640x640 RGB (mean subtracted) in, (objectness (1, 19200, 2), box codes
    (1, 19200, 4)) out: ResNet50 to conv4_block6_out and the RPN head."""
    import keras
    from keras import layers

    _seed()
    inputs = keras.Input((640, 640, 3), batch_size=1)
    resnet = keras.applications.ResNet50(input_tensor=inputs, include_top=False, weights=None)
    c4 = resnet.get_layer("conv4_block6_out").output  # 40x40x1024
    x = layers.Conv2D(512, 3, padding="same", activation="relu")(c4)
    anchors = len(RPN_SCALES) * len(RPN_RATIOS)
    objectness = layers.Softmax()(layers.Reshape((-1, 2))(layers.Conv2D(anchors * 2, 1)(x)))
    boxes = layers.Reshape((-1, 4))(layers.Conv2D(anchors * 4, 1)(x))
    return keras.Model(inputs, [objectness, boxes], name=FRCNN)


def rpn_anchors(size: int = 640 // RPN_STRIDE) -> np.ndarray:
    """(19200, 4) anchors (cy, cx, h, w) in pixels, in the head's order."""
    boxes = [(256 * s / math.sqrt(r), 256 * s * math.sqrt(r)) for s in RPN_SCALES for r in RPN_RATIOS]
    rows: List[Tuple[float, float, float, float]] = []
    for row in range(size):
        for col in range(size):
            cy, cx = (row + 0.5) * RPN_STRIDE, (col + 0.5) * RPN_STRIDE
            rows.extend((cy, cx, h, w) for h, w in boxes)
    return np.asarray(rows, np.float32)


def frcnn_model() -> Path:
    path = _cached(FRCNN, ".keras")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
        build_faster_rcnn_first_stage().save(tmp)
        tmp.replace(path)
    return path


def frcnn_detector(proposals: int = 300, pre_nms: int = 6000) -> Callable[[np.ndarray], np.ndarray]:
    """frame -> (<= 300, 4) proposals (x1, y1, x2, y2) in image pixels: pre + float TF + post."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(frcnn_model(), compile=False)
    anchors = rpn_anchors()

    @tf.function(input_signature=[tf.TensorSpec((1, 640, 640, 3), tf.float32)])
    def serve(x):
        return model(x, training=False)

    def detect(frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        scale = 640.0 / max(height, width)  # keep_aspect_ratio_resizer 640, padded to 640x640
        resized = cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_LINEAR)
        padded = np.zeros((1, 640, 640, 3), np.float32)
        padded[0, :resized.shape[0], :resized.shape[1]] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB) - MEAN_RGB
        objectness, codes = serve(tf.constant(padded))
        score = objectness.numpy()[0, :, 1]
        top = np.argpartition(-score, pre_nms)[:pre_nms]
        a, c = anchors[top], codes.numpy()[0][top]
        cy = c[:, 0] / 10.0 * a[:, 2] + a[:, 0]
        cx = c[:, 1] / 10.0 * a[:, 3] + a[:, 1]
        h = np.exp(np.minimum(c[:, 2] / 5.0, 4.0)) * a[:, 2]
        w = np.exp(np.minimum(c[:, 3] / 5.0, 4.0)) * a[:, 3]
        xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1) / scale
        keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), score[top].tolist(), 0.0, 0.7, top_k=proposals), int)
        kept = xywh[keep.reshape(-1)]
        return np.concatenate([kept[:, :2], kept[:, :2] + kept[:, 2:]], axis=1)

    return detect


def measure(frames: Sequence[np.ndarray], iterations: int, time_loop: Callable, percentiles: Callable
            ) -> Dict[str, Any]:
    """{peer: {p50, p95, n, ready_s, cached}}: ``iterations`` frames for the SSD, a fifteenth
    (at least 10) for the Faster R-CNN bound, which takes about half a second a frame."""
    import time

    import tensorflow as tf

    for setter in (tf.config.threading.set_intra_op_parallelism_threads,
                   tf.config.threading.set_inter_op_parallelism_threads):
        try:
            setter(1)
        except RuntimeError:  # TensorFlow already running (bench/latency.py set 1 thread already)
            pass
    out: Dict[str, Any] = {}
    for name, make, count, warmup in ((SSD, lambda: ssd_detector(frames), iterations, 20),
                                      (FRCNN, frcnn_detector, max(10, iterations // 15), 2)):
        cached = _cached(name, ".tflite" if name == SSD else ".keras").is_file()
        started = time.perf_counter()
        detect = make()
        ready_s = time.perf_counter() - started
        stats = percentiles(time_loop(detect, list(frames), warmup, count))
        stats.update(ready_s=round(ready_s, 1), cached=cached, tensorflow=tf.__version__,
                     description=DESCRIPTIONS[name])
        out[name] = stats
    return out
