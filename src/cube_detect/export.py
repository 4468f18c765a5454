"""Export a trained Keras model to a fully 8-bit TFLite model (uint8 in and out, batch 1).

Keras 3's documented path: ``model.export()`` (SavedModel) then
``TFLiteConverter.from_saved_model`` with a representative data set drawn from the run's own
training images. Writes ``NAME.tflite`` and the ``NAME.json`` sidecar atomically (a crash
leaves the previous model intact, never a half-written one), ``NAME.labels.txt`` and
``NAME.label_map.pbtxt`` beside them, and ``NAME_edgetpu.tflite`` when ``edgetpu_compiler`` is on
PATH, and the float network as ``NAME.keras`` (benchmarks, fine-tuning). Reports
float-vs-int8 mAP@0.5 on the validation images.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from cube_detect.errors import ModelError
from cube_detect.files import atomic_write_bytes, publish_group
from cube_detect.inference import DecodeSettings, Detection, Detector, decode, make_interpreter
from cube_detect.labels import write_label_files
from cube_detect.metrics import summarize
from cube_detect.modelspec import ModelSpec
from cube_detect.samples import Sample, batch_of, float_detections, ground_truth, load_data, reviewed_photos
from cube_detect.thresholds import MIN_REVIEWED_PHOTOS, choose_threshold, criterion_for

log = logging.getLogger("cube_detect.export")
#: Synthetic scenes re-rendered by ``export`` for calibration: the converter reads at most 200
#: representative images (``_representative``); twice that leaves it a varied pick.
CALIBRATION_SCENES = 400


def _representative(samples, count: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), size=min(count, len(samples)), replace=False)

    def generator():
        for k, i in enumerate(picks):
            image = batch_of([samples[i][0]])
            if k == 0:  # pin the input range to exactly [0, 1]: uint8 input = raw pixels
                image[0, 0, 0, :], image[0, 0, 1, :] = 0.0, 1.0
            yield [image]

    return generator


def convert(model, samples=None, quantize: bool = True) -> bytes:
    """TFLite flatbuffer of ``model`` at batch 1: full-integer (uint8 I/O) or float."""
    import tensorflow as tf

    # Batch 1, static shapes: the Edge TPU compiler refuses a dynamic batch, and Keras 3's
    # export() ignores Input(batch_size=...) unless given the signature.
    signature = [tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32, name="image")]
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, verbose=False, input_signature=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        return converter.convert()


def remove_stale_temporaries(out: Path) -> List[Path]:
    """Temporary files an interrupted export left beside ``out`` (``.NAME.*.tmp*``): removed."""
    stale = sorted(out.parent.glob(f".{out.name}.*.tmp*"))
    # An export's staging folder is exactly ``.NAME.stage.XXXXXXXX.tmp`` (mkdtemp's random part has
    # no dot): never the folder of another model whose name starts with NAME.
    staging = re.compile(re.escape(f".{out.name}.stage.") + r"[^.]+\.tmp")
    stale = [p for p in stale if not p.is_dir() or p.is_symlink() or staging.fullmatch(p.name)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) of an interrupted export: %s", len(stale),
                 ", ".join(p.name for p in stale))
    return stale


def tflite_detections(model_bytes: bytes, spec: ModelSpec, samples: Sequence[Sample],
                      threshold: float = 0.05) -> List[List[Detection]]:
    """Detections (model pixels) of a TFLite model on model-sized samples, with the robot's interpreter."""
    with tempfile.NamedTemporaryFile(suffix=".tflite") as handle:
        handle.write(model_bytes)
        handle.flush()
        detector = Detector(make_interpreter(Path(handle.name), 2), spec, "cpu", "evaluation", Path(handle.name))
        decoding = DecodeSettings(threshold=threshold, max_cubes=10)
        return [decode(*detector.raw_outputs(image), spec, decoding) for image, _ in samples]


def compile_edgetpu(model_path: Path) -> Optional[dict]:
    """Run ``edgetpu_compiler`` when installed; report how many ops map to the TPU."""
    compiler = shutil.which("edgetpu_compiler")
    if not compiler:
        log.info("edgetpu_compiler not found: CPU model only; compile later with "
                 "`edgetpu_compiler -s -o %s %s` on a machine that has it", model_path.parent, model_path)
        return None
    proc = subprocess.run([compiler, "-s", "-o", str(model_path.parent), str(model_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        log.error("edgetpu_compiler failed (exit %d): %s", proc.returncode, proc.stdout.strip()[-500:])
        return {"ok": False, "log": proc.stdout[-2000:]}
    mapped = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", proc.stdout)
    cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", proc.stdout)
    result = {"ok": True, "tpu_ops": int(mapped.group(1)) if mapped else None,
              "cpu_ops": int(cpu.group(1)) if cpu else None}
    log.info("Edge TPU model written: %s ops on the TPU, %s on the CPU", result["tpu_ops"], result["cpu_ops"])
    return result


def export_checkpoint(model, spec: ModelSpec, calibration_samples, val_samples, out: Path,
                      training: Optional[dict] = None, photos: Optional[Sequence[Sample]] = None,
                      reader_source: Optional[Path] = None, data: Sequence[Path] = (), skip_bad: bool = False,
                      reader_tuning=None) -> dict:
    """Convert, evaluate float vs int8, write model + sidecar + labels; returns the figures.

    ``photos``: the user's reviewed test photos (None: no data set given); at least
    :data:`MIN_REVIEWED_PHOTOS` of them set the default threshold instead of the validation
    images, and one log line says which rule chose it. When ``spec`` names a face reader (a
    fine-tune of a model that has one), ``reader_source`` is that reader's file: the new model
    gets it (:func:`cube_detect.reader_train.attach_reader`), tuned on the training photos of
    ``data`` as ``reader_tuning`` (a ``ReaderTuning``; None: as it is) says, and the threshold
    picked again with it, on the full-resolution reviewed test photos of ``data`` when there are
    enough."""
    reader, spec.reader = spec.reader, None  # the sidecar names a reader only once it is beside the model
    from cube_detect.model import predict_fn  # TensorFlow: only when exporting

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    int8 = convert(model, calibration_samples, quantize=True)
    truth = ground_truth(val_samples, spec)
    chosen_on = list(photos) if photos is not None and len(photos) >= MIN_REVIEWED_PHOTOS else []
    # One interpreter for the validation images and the photos that choose the threshold.
    found = tflite_detections(int8, spec, list(val_samples) + chosen_on)
    int8_found, photo_found = found[:len(val_samples)], found[len(val_samples):]
    criterion = criterion_for(spec.labels)
    spec.threshold, curve = choose_threshold(truth, int8_found, criterion)
    threshold_source = f"validation images ({len(val_samples)})"
    photo_curve = None
    if chosen_on:
        synthetic_choice = spec.threshold
        spec.threshold, photo_curve = choose_threshold(ground_truth(chosen_on, spec), photo_found, criterion,
                                                       real_photos=True)
        threshold_source = f"your reviewed test photos ({len(chosen_on)})"
        log.info("default threshold %.2f chosen on your %d reviewed test photos (%s %.3f there; the validation "
                 "images' rule would pick %.2f)", spec.threshold, len(chosen_on), criterion.replace("_", " "),
                 photo_curve[f"{spec.threshold:.2f}"], synthetic_choice)
    elif photos is not None:
        log.info("default threshold from the validation images: only %d reviewed test photos (%d needed to "
                 "choose it on your photos; review more in `python -m cube_detect review`)", len(photos),
                 MIN_REVIEWED_PHOTOS)
    float_map = summarize(truth, float_detections(predict_fn(model), val_samples, spec), spec.labels, spec.threshold)
    int8_map = summarize(truth, int8_found, spec.labels, spec.threshold)
    figures = {
        "val_images": len(val_samples),
        "float_mAP50": round(float_map["mAP50"], 4), "int8_mAP50": round(int8_map["mAP50"], 4),
        "int8_mAP75": round(int8_map["mAP75"], 4),
        "int8_loss_mAP50": round(float_map["mAP50"] - int8_map["mAP50"], 4),
        "int8_exact_sequences": round(int8_map["sequence_accuracy"], 4),
        "threshold": spec.threshold,
        "threshold_criterion": criterion,
        "threshold_source": threshold_source,
        f"{criterion}_by_threshold": curve,
        **({f"photos_{criterion}_by_threshold": photo_curve} if photo_curve else {}),
        "model_bytes": len(int8),
    }
    # The figure the threshold was chosen by, where: exact sequences for the digits, F1 for others.
    chosen_curve = photo_curve or curve
    chosen_by = "exact sequences" if criterion == "exact_sequences" else "F1"
    log.info("float mAP@0.5 %.4f, int8 mAP@0.5 %.4f (loss %.4f), %d bytes; default threshold %.2f "
             "(%s %.3f on %s)", figures["float_mAP50"], figures["int8_mAP50"], figures["int8_loss_mAP50"],
             len(int8), spec.threshold, chosen_by, chosen_curve[f"{spec.threshold:.2f}"], threshold_source)
    spec.extra = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "metrics": figures, "training": {k: v for k, v in (training or {}).items() if k != "export"}}
    model_path = out.with_suffix(".tflite")
    spec.model_sha256 = hashlib.sha256(int8).hexdigest()
    remove_stale_temporaries(out)
    # Everything this export writes is made first in a hidden folder beside ``out`` -- the model,
    # its sidecar, float network and label files and, for a fine-tune of a model that has a face
    # reader, the reader tuned and the threshold picked with it -- then renamed into place, the
    # model last (:func:`publish_staged`). An export stopped before (Ctrl-C, a kill, a target
    # refused) leaves the files that were there as they were: `train --init M --out M` fine-tunes
    # in place, and M keeps its reader until the new one is ready. The next export removes a
    # folder a kill left.
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.stage.", suffix=".tmp", dir=out.parent))
    try:
        staged = stage / out.name
        _write_model_files(model, spec, int8, staged)
        if reader is not None:
            from cube_detect.reader_train import attach_reader

            attached = attach_reader(staged.with_suffix(".tflite"), reader, reader_source, data, skip_bad,
                                     reader_tuning, published_as=model_path, compile_twin=False)
            if attached.get("reader"):
                attached["reader"] = str(out.parent / Path(attached["reader"]).name)
            figures.update(attached)
        published = publish_staged(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log.info("wrote %s (+ %s)", model_path, ", ".join(p.name for p in published if p != model_path))
    figures["model"] = str(model_path)
    figures["edgetpu"] = compile_edgetpu(model_path)
    if figures.get("reader"):
        from cube_detect.reader_train import compile_reader_twin

        compile_reader_twin(Path(figures["reader"]))
    return figures


def _write_model_files(model, spec: ModelSpec, int8: bytes, out: Path) -> None:
    """``out.tflite``, its sidecar, float network (``out.keras``) and label files, complete."""
    model.save(out.with_suffix(".keras"))  # float network: benchmarks and fine-tuning (Keras writes it)
    spec.save(out.with_suffix(".json"))
    atomic_write_bytes(out.with_suffix(".tflite"), int8)
    write_label_files(out, spec.labels)


def publish_staged(stage: Path, out: Path) -> List[Path]:
    """Move every file of ``stage`` beside ``out`` under the same name (:func:`publish_group`:
    every target checked first), the sidecar and last the model (``out.tflite``). Edge TPU twins
    are loaded without a sha check: the model's old one goes first (a new one is compiled once the
    model is in place), and when the stage brings a reader, the old one is retired as
    ``publish_reader`` retires it (:func:`cube_detect.reader_train.retire_reader`), so that a kill
    between two renames leaves a model that loads; one between the sidecar and the model leaves a
    pair that inference refuses with one line (``model_sha256``)."""
    from cube_detect.reader import edgetpu_twin, reader_path
    from cube_detect.reader_train import float_reader_path, retire_reader

    model_path, sidecar = out.with_suffix(".tflite"), out.with_suffix(".json")
    files = sorted(p for p in stage.iterdir() if p.is_file() and not p.is_symlink())
    order = [p for p in files if p.name not in (sidecar.name, model_path.name)]
    order += [p for p in files if p.name == sidecar.name] + [p for p in files if p.name == model_path.name]

    def before_renames() -> None:  # every target has passed its checks: nothing refuses the group now
        twin = edgetpu_twin(model_path)
        if twin.is_file() and not twin.is_symlink():
            twin.unlink()
            log.info("removed %s: it was compiled from the model being replaced", twin.name)
        if (stage / reader_path(model_path).name).is_file():
            retire_reader(model_path, keeps_float=(stage / float_reader_path(model_path).name).is_file())

    return publish_group([(p, out.parent / p.name) for p in order], before_renames)


# ----------------------------------------------------------------------------- CLI
def run_spec(state: dict, state_path: Path) -> ModelSpec:
    """The model spec a training run saved in its ``state.json`` (``spec``: the sidecar document).

    Runs of earlier versions saved only the labels and the input size (or nothing): the rest is
    ModelSpec's defaults, as then."""
    saved = state.get("spec", {})
    if "format" in saved:
        return ModelSpec.from_dict(saved, state_path)
    given: Dict[str, Any] = {name: int(saved[name]) for name in ("channels", "width", "height") if name in saved}
    if "labels" in saved:
        given["labels"] = {int(k): v for k, v in saved["labels"].items()}
    return ModelSpec(**given)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, required=True,
                        help="training run folder (has best.keras and state.json)")
    parser.add_argument("--checkpoint", choices=["best", "checkpoint"], default="best",
                        help="which checkpoint of the run (default: best validation mAP)")
    parser.add_argument("--out", required=True, help="model path prefix, e.g. models/mymodel")
    parser.add_argument("--reader-steps", type=int, default=None, metavar="N",
                        help="a fine-tune of a model with a face reader: tune the reader on the run's training "
                             "photos for N steps (default: the run's own --reader-steps; 0 keeps it as it is)")


def run(args: argparse.Namespace) -> int:
    if args.reader_steps is not None and args.reader_steps < 0:
        raise ModelError(f"--reader-steps {args.reader_steps}: expected 0 (keep the reader) or more")
    import tensorflow as tf  # only when this command runs: `export --help` stays fast

    path = args.workdir / f"{args.checkpoint}.keras"
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found (train first)")
    state_path = args.workdir / "state.json"
    state = json.loads(state_path.read_text())
    conf = state["config"]
    spec = run_spec(state, state_path)
    # The run's own data again: its validation images (same seed, families and digit source) for
    # the float-vs-int8 figures and the threshold, up to CALIBRATION_SCENES of its synthetic scenes
    # as the converter's representative data, and its reviewed test photos, as `train` exports.
    # Runs saved before a setting existed had its old default (generator digits, the mixture).
    data = [Path(d) for d in state.get("data", [])]
    families = ast.literal_eval(conf.get("families") or "()")
    skip_bad = bool(conf.get("skip_bad", False))
    train_samples, val_samples = load_data(
        spec, data, min(int(conf.get("synthetic", 0)), CALIBRATION_SCENES), int(conf.get("validation", 300)),
        int(conf.get("seed", 0)), skip_bad=skip_bad, families=families,
        user_share=float(conf.get("user_share", 1 / 3)), digits=conf.get("digits", "generator"))
    model = tf.keras.models.load_model(path, compile=False)
    init = conf.get("init")
    reader_source = Path(init).with_name(spec.reader.file) if init and init != "None" and spec.reader else None
    from cube_detect.reader_train import TUNE_STEPS, ReaderTuning

    figures = export_checkpoint(model, spec, train_samples, val_samples, Path(args.out).with_suffix(""),
                                training={"workdir": str(args.workdir), "epoch": state.get("best_epoch")},
                                photos=reviewed_photos(data, spec, skip_bad) if data else None,
                                reader_source=reader_source, data=data, skip_bad=skip_bad,
                                reader_tuning=ReaderTuning(
                                    int(conf.get("reader_steps", TUNE_STEPS)) if args.reader_steps is None
                                    else args.reader_steps, conf.get("digits", "generator"), int(conf.get("seed", 0))))
    print(json.dumps(figures, indent=2, default=str))
    return 0
