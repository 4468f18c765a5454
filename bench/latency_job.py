"""The latency part of `make bench`, in its own process (TensorFlow stays out of the ROS part).

python -m bench.latency_job MODEL.tflite [--iterations N] [--peers]  -> one JSON object on stdout:
  latency_ms.{int8_cpu, float_tflite, float_tf} (bench/latency.py; the float ones need the
  float network MODEL.keras beside the model, else they are null with a note); with --peers
  the peer detectors of bench/peers.py on the same frames (built once, then cached); a cross-check:
  the same int8 model through TensorFlow's own tf.lite.Interpreter (same labels? how fast? the
  runtime, not the model, decides how fast int8 runs on a given CPU: tflite-runtime 2.14 took
  ~10 ms per frame here where LiteRT takes ~0.6 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from bench import latency
from cube_detect.inference import Detector, load_detector, runtime_name


def int8_only(model: Path, iterations: int, warmup: int = 20) -> dict:
    detector = load_detector(model, backend="cpu", num_threads=1)
    images = latency.frames()
    return {"int8_cpu": latency.percentiles(latency.time_loop(detector.detect, images, warmup, iterations)),
            **latency.without_reader(detector, images, warmup, iterations)}


def int8_on_tf_interpreter(model: Path, iterations: int, warmup: int = 20) -> dict:
    """The shipped int8 model, pre- and post-processing included, on tf.lite.Interpreter (TF 2.19)."""
    import warnings

    import tensorflow as tf

    reference = load_detector(model, backend="cpu", num_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_path=str(model), num_threads=1)
    detector = Detector(interp, reference.spec, "cpu", "tf.lite.Interpreter", model, reader=reference.reader)
    images = latency.frames()
    same = all([d.class_id for d in detector.detect(im)] == [d.class_id for d in reference.detect(im)]
               for im in images)
    out = latency.percentiles(latency.time_loop(detector.detect, images, warmup, iterations))
    out["runtime"] = f"tensorflow {tf.__version__} tf.lite.Interpreter (XNNPACK)"
    out["same_labels_as_tflite_runtime"] = bool(same)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--peers", action="store_true", help="also time the peer detectors (bench/peers.py)")
    args = parser.parse_args()
    keras = args.model.with_suffix(".keras")
    notes = []
    if keras.is_file():
        results = latency.measure(args.model, keras, iterations=args.iterations)
    else:
        results = int8_only(args.model, args.iterations)
        results.update(float_tflite=None, float_tf=None)
        notes.append(f"{keras} not found: no float comparison (export writes it beside the .tflite)")
    results["int8_runtime"] = runtime_name()  # also what bench/latency.py runs the float TFLite model on
    try:
        results["int8_tf_interpreter"] = int8_on_tf_interpreter(args.model, args.iterations)
    except Exception as exc:  # a diagnostic: never fails the benchmark
        notes.append(f"int8 on tf.lite.Interpreter: {type(exc).__name__}: {exc}")
    if args.peers:
        from bench import peers

        results.update(peers.measure(latency.frames(), args.iterations, latency.time_loop, latency.percentiles))
    results["notes"] = notes
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
