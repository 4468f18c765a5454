"""Inference latency of the shipped network on one 640x480 frame, 1 thread, pre- and
post-processing included: int8 TFLite (what the robot runs) vs the same network as float
TFLite and as float TensorFlow (the workshops' SavedModel path). Same frames, same run.

Used by bench/run_bench.py; prints JSON when run alone.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cube_detect.export import convert  # TensorFlow only inside convert()
from cube_detect.inference import DecodeSettings, decode, letterbox, load_detector, make_interpreter, to_gray
from cube_detect.synth import render_scene

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def frames(count: int = 20, seed: int = 9001):
    return [render_scene(np.random.default_rng([seed, i]), size=(640, 480))[0] for i in range(count)]


def percentiles(samples_ms):
    a = np.asarray(samples_ms)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "n": int(a.size)}


def time_loop(fn, images, warmup: int, iterations: int):
    for i in range(warmup):
        fn(images[i % len(images)])
    out = []
    for i in range(iterations):
        t0 = time.perf_counter()
        fn(images[i % len(images)])
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def without_reader(detector, images, warmup: int, iterations: int) -> dict:
    """The same detector without its face reader, on the same frames (the float figures below
    have no reader either): ``int8_cpu_without_reader`` and the reader's share."""
    if detector.reader is None:
        return {}
    reader = detector.reader
    detector.reader = None
    try:
        alone = percentiles(time_loop(detector.detect, images, warmup, iterations))
    finally:
        detector.reader = reader
    return {"int8_cpu_without_reader": alone}


def measure(model_path: Path, keras_path: Path, iterations: int = 300, warmup: int = 20) -> dict:
    images = frames()
    detector = load_detector(model_path, backend="cpu", num_threads=1)
    spec = detector.spec
    results = {"int8_cpu": percentiles(time_loop(detector.detect, images, warmup, iterations))}
    timing = dict(detector.last_timing_ms)  # the last frame's breakdown, with the reader
    results.update(without_reader(detector, images, warmup, iterations))

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = tf.keras.models.load_model(keras_path, compile=False)

    def prepare(image):
        boxed, scale = letterbox(to_gray(image), spec.width, spec.height, spec.pad_value)
        return (boxed.astype(np.float32) / 255.0)[None, :, :, None], scale

    def post(heat, boxes, scale):  # what Detector.detect does after the model
        return decode(heat[0], boxes[0], spec, DecodeSettings(threshold=0.5), scale=scale)

    with tempfile.NamedTemporaryFile(suffix=".tflite") as handle:
        handle.write(convert(model, quantize=False))
        handle.flush()
        interp = make_interpreter(handle.name, num_threads=1)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]["index"]
        outs = sorted(interp.get_output_details(), key=lambda o: -int(o["shape"][-1] != 4))

        def run_float_tflite(image):
            x, scale = prepare(image)
            interp.set_tensor(inp, x)
            interp.invoke()
            heat, boxes = (interp.get_tensor(o["index"]) for o in outs)
            return post(heat, boxes, scale)

        results["float_tflite"] = percentiles(time_loop(run_float_tflite, images, warmup, iterations))

    @tf.function(input_signature=[tf.TensorSpec((1, spec.height, spec.width, 1), tf.float32)])
    def serve(x):
        return model(x, training=False)

    def run_float_tf(image):
        x, scale = prepare(image)
        heat, boxes = serve(tf.constant(x))
        return post(heat.numpy(), boxes.numpy(), scale)

    results["float_tf"] = percentiles(time_loop(run_float_tf, images, warmup, max(iterations // 2, 200)))
    results["int8_breakdown_last_ms"] = {k: round(v, 3) for k, v in timing.items()}
    return results


if __name__ == "__main__":
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models" / "cube_detect.tflite"
    print(json.dumps(measure(model, model.with_suffix(".keras")), indent=2))
