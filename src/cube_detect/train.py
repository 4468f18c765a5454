"""``python -m cube_detect train``: train the detector from scratch on 2 CPU cores, then export.

Data: the user's labelImg data sets (``--data DIR``: DIR/train for training, DIR/test for
validation) and/or synthetic scenes made on the fly (``--synthetic N``). Every image is
letterboxed to the model input once (the same ``letterbox`` inference uses), kept in memory,
and augmented per epoch. Validation mAP@0.5 (COCO, pycocotools) after every epoch; a
checkpoint after every epoch (atomic), so Ctrl-C or a crash loses at most one epoch and the
same command resumes; curves in ``<workdir>/training_curves.png``; the best epoch is exported.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from cube_detect.dataset import images_root, resolve_labels
from cube_detect.errors import CubeDetectError
from cube_detect.files import atomic_write_text
from cube_detect.images import median_colour
from cube_detect.labels import LABELS, LABELS_HELP, describe
from cube_detect.metrics import summarize
from cube_detect.modelspec import ModelSpec, sidecar_path
from cube_detect.reader_train import TUNE_STEPS
from cube_detect.samples import Sample, batch_of, float_detections, ground_truth, load_data, reviewed_photos
from cube_detect.synth import FAMILIES, LABEL_VISIBLE, handwriting, parse_families

log = logging.getLogger("cube_detect.train")


#: Time kept for the export at the end of a run: conversion, float-vs-int8 figures, threshold
#: (measured: 14-18 s on 2 cores with 300 validation scenes and 13 photos), kept twice over.
EXPORT_RESERVE_S = 30.0
#: A run with less training time than this is refused (it would export a useless model).
MIN_TRAIN_S = 30.0
#: Training images --channels measures the channels of an --init network on before it prunes them.
PRUNE_IMAGES = 256
#: Fewest batches in an epoch: smaller data sets are repeated (see BatchMaker).
MIN_EPOCH_BATCHES = 20
#: Share of the rescaled training samples zoomed far out, and by how much: faces 0.45-0.75 times as
#: large, as a camera 1.3-2.2 times farther away sees them. Issue #19 found real photos read worse
#: padded to 2x the frame (24 of 36 against 30); so did our held-out hands (`robustness --zoom-out 2`).
ZOOM_OUT_SHARE = 0.3
ZOOM_OUT_SCALE = (0.45, 0.75)


# ----------------------------------------------------------------------------- augmentation
def augment(sample: Sample, rng: np.random.Generator, flip: bool = False) -> Sample:
    """Geometric (scale, shift, optional mirror) and photometric (gamma, contrast, noise, blur) jitter.

    No flips by default and no large rotations: a mirrored 2 is not a 2 (``flip`` is for classes
    that look the same mirrored: shapes, hands). The synthetic scenes already vary rotation,
    perspective and lighting; this adds per-epoch variety for a fixed image pool.
    """
    image, boxes = sample
    h, w = image.shape[:2]
    if flip and rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
        if len(boxes):
            boxes = boxes.copy()
            boxes[:, [1, 3]] = w - boxes[:, [3, 1]]
    if rng.random() < 0.7:
        far = rng.random() < ZOOM_OUT_SHARE
        s = rng.uniform(*ZOOM_OUT_SCALE) if far else rng.uniform(0.75, 1.35)
        tx, ty = rng.uniform(-0.12, 0.12) * w, rng.uniform(-0.12, 0.12) * h
        matrix = np.array([[s, 0, (1 - s) * w / 2 + tx], [0, s, (1 - s) * h / 2 + ty]], np.float32)
        # Zoomed far out, the scene sits on its own median colour (as `robustness --zoom-out` reads it),
        # not on the dark border of a slight zoom.
        border = median_colour(image) if far else int(rng.integers(0, 30))
        image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=tuple(np.broadcast_to(np.asarray(border, np.float64), (3,)).tolist()))
        if len(boxes):
            b = boxes.copy()
            b[:, [1, 3]] = b[:, [1, 3]] * s + matrix[0, 2]
            b[:, [2, 4]] = b[:, [2, 4]] * s + matrix[1, 2]
            area = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
            b[:, [1, 3]] = b[:, [1, 3]].clip(0, w)
            b[:, [2, 4]] = b[:, [2, 4]].clip(0, h)
            visible = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2]) / np.maximum(area, 1e-6)
            # A face cut by the frame keeps its visible part as its box (as a labelImg user
            # annotates it) when enough of it is left to read: synth's rule (LABEL_VISIBLE).
            boxes = b[visible >= LABEL_VISIBLE]
    img = image.astype(np.float32) / 255.0
    img = np.power(img, rng.uniform(0.6, 1.6))  # dim or bright exposure
    img = img * rng.uniform(0.6, 1.3) + rng.uniform(-0.08, 0.08)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
    if rng.random() < 0.5:
        img = img + rng.normal(0, rng.uniform(0.005, 0.04), img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32), boxes


class BatchMaker:
    """Shuffled, augmented batches of (images, targets), prepared one batch ahead in a thread.

    ``encode`` turns one sample's boxes into the network's target maps (``model.encode_targets``)."""

    def __init__(self, samples: List[Sample], spec: ModelSpec, batch_size: int, seed: int,
                 encode: Callable[[Sequence[tuple], ModelSpec], np.ndarray], flip: bool = False):
        if not samples:
            raise CubeDetectError("no training images")
        # A small data set (a few dozen photos) still makes whole batches and a real epoch:
        # its images are repeated (each copy augmented differently) up to MIN_EPOCH_BATCHES.
        batch_size = min(batch_size, len(samples))
        repeats = max(1, -(-MIN_EPOCH_BATCHES * batch_size // len(samples)))
        self.samples, self.spec, self.batch_size, self.flip = samples * repeats, spec, batch_size, flip
        self.rng = np.random.default_rng(seed)
        self._encode = encode

    @property
    def steps_per_epoch(self) -> int:
        return len(self.samples) // self.batch_size

    def batch(self, indices) -> Tuple[np.ndarray, np.ndarray]:
        images, targets = [], []
        for i in indices:
            img, boxes = augment(self.samples[i], self.rng, self.flip)
            images.append(img if img.ndim == 3 else img[:, :, None])
            targets.append(self._encode([tuple(b) for b in boxes.tolist()], self.spec))
        return np.stack(images), np.stack(targets)

    def epoch(self):
        order = self.rng.permutation(len(self.samples))
        chunks = [order[i:i + self.batch_size] for i in range(0, len(order) - self.batch_size + 1, self.batch_size)]
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(self.batch, chunks[0]) if chunks else None
            for k in range(len(chunks)):
                assert future is not None
                batch = future.result()
                future = pool.submit(self.batch, chunks[k + 1]) if k + 1 < len(chunks) else None
                yield batch


# ----------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    out: Path
    workdir: Path
    data: List[Path]
    synthetic: int = 6000
    validation: int = 300
    minutes: float = 9.0
    epochs: int = 0  # 0 = as many as fit in ``minutes``
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    width: int = 2
    skip_bad: bool = False
    workers: int = 2
    export: bool = True
    init: Optional[Path] = None  # fine-tune this exported model (its .keras) instead of from scratch
    families: Tuple[str, ...] = ()  # synthetic training scenes from these families only; () = the mixture
    digits: str = "mixed"  # synth's digit source: real hands for half the faces + camera realism
    user_share: float = 1 / 3  # at least this share of the training samples are the user's photos
    labels: Optional[Dict[int, str]] = None  # the classes (id -> name); None: the digits one, two
    color: bool = False  # colour (BGR) model input instead of gray
    flip: bool = False  # mirror images in augmentation (not for digits: a mirrored 2 is not a 2)
    #: (width, height) of the network's input; None: 160x120, or the --init model's own. The network is
    #: fully convolutional, so a fine-tune can change it: the weights carry over to the new size.
    input_size: Optional[Tuple[int, int]] = None
    #: (stem filters, context channels) of the network; None: 16 and 64 x ``width``, or the --init
    #: model's own. With ``init``, fewer prune it (``model.prune_channels``): a faster network to fine-tune.
    channels: Optional[Tuple[int, int]] = None
    #: With ``init``: steps tuning the model's face reader on the user's training photos after the
    #: detector (``reader_train.tune_reader``); 0 keeps the reader as it is.
    reader_steps: int = TUNE_STEPS

    def settings(self) -> dict:
        """What makes two runs the same run (a checkpoint is resumed only for the same settings).
        ``input_size`` and ``channels`` count only when given, so a run interrupted before those flags
        existed resumes."""
        return {k: [str(d) for d in v] if k == "data" else str(v) if isinstance(v, (Path, tuple, dict)) else v
                for k, v in vars(self).items()
                if k not in ("out", "workdir", "workers", "export", "reader_steps")
                and not (k in ("input_size", "channels") and v is None)}


def _save_state(workdir: Path, model, state: dict) -> None:
    tmp = workdir / "checkpoint.tmp.keras"
    model.save(tmp)
    os.replace(tmp, workdir / "checkpoint.keras")
    atomic_write_text(workdir / "state.json", json.dumps(state, indent=2))


def plot_curves(history: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["loss"] for h in history], label="total")
    ax1.plot(epochs, [h["heat_loss"] for h in history], label="heatmap (focal)")
    ax1.plot(epochs, [h["box_loss"] for h in history], label="box (1 - GIoU)")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("training loss"), ax1.set_yscale("log"), ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(epochs, [h["val_mAP50"] for h in history], "o-", label="mAP@0.5")
    ax2.plot(epochs, [h["val_mAP75"] for h in history], "s-", label="mAP@0.75")
    ax2.set_xlabel("epoch"), ax2.set_ylabel("validation"), ax2.set_ylim(0, 1.01), ax2.legend()
    ax2.grid(alpha=0.3)
    save_figure(fig, "cube_detect training", path)


def save_figure(fig, title: str, path: Path) -> None:
    """Title, lay out and write a matplotlib figure as ``path`` (a PNG written whole, then renamed)."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def train(cfg: TrainConfig) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow (and model.py, built on it) only once training runs: `train --help` stays fast.
    import tensorflow as tf

    from cube_detect.export import export_checkpoint
    from cube_detect.model import (
        build_model,
        channels,
        count_macs,
        encode_targets,
        make_train_step,
        predict_fn,
        prune_channels,
        with_input_size,
    )

    try:
        tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count() or 2)
    except RuntimeError:  # TensorFlow already running in this process (tests, notebooks): keep it
        pass
    tf.keras.utils.set_random_seed(cfg.seed)
    reserve_s = EXPORT_RESERVE_S if cfg.export else 10.0
    reader_s, reader_work = 0.0, ""
    if cfg.export and cfg.init is not None:  # and the face reader's tuning and threshold, when it has one
        from cube_detect.reader_train import reader_seconds
        reader_s, reader_work = reader_seconds(Path(cfg.init), cfg.data, cfg.reader_steps, cfg.skip_bad)
        reserve_s += reader_s
    if not cfg.epochs and cfg.minutes * 60 < reserve_s + MIN_TRAIN_S:
        what = f"the export and the face reader's {reader_work} take" if reader_s else "the export alone takes"
        raise CubeDetectError(f"--minutes {cfg.minutes:g} leaves no time to train: {what} about "
                              f"{reserve_s:.0f} s; give at least "
                              f"--minutes {math.ceil((reserve_s + MIN_TRAIN_S) / 30) / 2:g}"
                              + (" (or --reader-steps 0)" if "tuning" in reader_work else ""))
    labels = dict(LABELS if cfg.labels is None else cfg.labels)
    init_keras, init_model = None, None
    if cfg.init is not None:  # fine-tuning: the exported model's own spec and float network
        spec = ModelSpec.load(sidecar_path(cfg.init))
        spec.extra = {}
        if spec.labels != labels:
            raise CubeDetectError(f"{cfg.init}: its classes ({describe(spec.labels)}) are not the data's "
                                  f"({describe(labels)}): train from scratch (without --init)")
        init_keras = Path(cfg.init).with_suffix(".keras")
        if not init_keras.is_file():
            raise CubeDetectError(f"{init_keras}: --init needs the float network export writes beside "
                                  f"{Path(cfg.init).name} (NAME.keras)")
        if cfg.channels is not None:  # before minutes of rendering: a network cannot grow channels
            init_model = tf.keras.models.load_model(init_keras, compile=False)  # loaded once, used below
            had = channels(init_model)
            if cfg.channels[0] > had[0] or cfg.channels[1] > had[1]:
                raise CubeDetectError(f"--channels {cfg.channels[0]},{cfg.channels[1]}: {cfg.init} has "
                                      f"{had[0]},{had[1]}; a fine-tune can keep fewer, not add more")
    else:
        spec = ModelSpec(labels=labels, channels=3 if cfg.color else 1)
    if cfg.input_size is not None:  # from scratch, or a fine-tune at another size than its model's
        spec.width, spec.height = cfg.input_size
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    if cfg.synthetic and cfg.digits == "mixed":  # one clear line now, not one per rendering worker
        log.info("%s", handwriting.check_data())
    started = time.monotonic()
    train_samples, val_samples = load_data(spec, cfg.data, cfg.synthetic, cfg.validation, cfg.seed,
                                           cfg.workers, cfg.skip_bad, cfg.families, cfg.user_share,
                                           cfg.digits)
    val_truth = ground_truth(val_samples, spec)

    state_path = cfg.workdir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    resumable = (state is not None and (cfg.workdir / "checkpoint.keras").exists()
                 and state.get("settings") == cfg.settings() and not state.get("finished"))
    if state is not None and resumable:
        model = tf.keras.models.load_model(cfg.workdir / "checkpoint.keras", compile=False)
        log.info("resuming %s from epoch %d (best val mAP@0.5 %.3f)", cfg.workdir, state["epoch"],
                 state.get("best_mAP50", 0))
        state.setdefault("config", {})["reader_steps"] = cfg.reader_steps  # not a setting: this run's, for export
    else:
        if state is not None:
            log.info("%s holds a %s run with other settings: starting a new run there", cfg.workdir,
                     "finished" if state.get("finished") else "different")
        state = {"epoch": 0, "history": [], "best_mAP50": -1.0, "elapsed_s": 0.0,
                 "data": [str(d) for d in cfg.data], "settings": cfg.settings(),
                 # what `export --workdir` needs to rebuild the model's spec: its sidecar document
                 "spec": spec.to_dict(),
                 "config": {
            k: str(v) if isinstance(v, (Path, tuple)) else v for k, v in vars(cfg).items() if k != "data"}}
        if init_keras is not None:
            model = init_model if init_model is not None else tf.keras.models.load_model(init_keras, compile=False)
            was = tuple(model.input_shape[1:3])
            if was != (spec.height, spec.width):  # same weights, a network built for the new input size
                model = with_input_size(model, spec)
                log.info("fine-tuning %s at input %dx%d (it was trained at %dx%d; its weights carry over)",
                         init_keras, spec.width, spec.height, was[1], was[0])
            else:
                log.info("fine-tuning %s", init_keras)
            if cfg.channels is not None and cfg.channels != channels(model):
                had = channels(model)
                probe = batch_of([image for image, _ in train_samples[:PRUNE_IMAGES]])
                model, kept_stem, kept_context = prune_channels(model, spec, probe, *cfg.channels)
                log.info("pruned to %d stem filters (of %d) and %d context channels (of %d): the ones that carry "
                         "%.0f %% and %.0f %% of their activity on %d training images; the fine-tune recovers the rest",
                         cfg.channels[0], had[0], cfg.channels[1], had[1], 100 * kept_stem, 100 * kept_context,
                         len(probe))
        else:
            model = build_model(spec, cfg.width, *(cfg.channels or (None, None)))
    log.info("model: %d parameters, %.1f M multiply-adds per frame; %d train / %d validation images",
             model.count_params(), count_macs(model) / 1e6, len(train_samples), len(val_samples))

    batches = BatchMaker(train_samples, spec, cfg.batch_size, cfg.seed + state["epoch"], encode_targets, cfg.flip)
    steps_per_epoch = batches.steps_per_epoch
    # --minutes is the whole run's budget: rendering, training, the export (EXPORT_RESERVE_S), and the
    # face reader of a fine-tuned model that has one.
    train_budget_s = cfg.minutes * 60.0 - (time.monotonic() - started) - reserve_s
    if not cfg.epochs and train_budget_s < MIN_TRAIN_S and "train_budget_s" not in state:
        needed = (cfg.minutes * 60.0 - train_budget_s + MIN_TRAIN_S) / 60
        raise CubeDetectError(f"--minutes {cfg.minutes:g}: loading the data took {time.monotonic() - started:.0f} s, "
                              f"which leaves {max(train_budget_s, 0):.0f} s to train before the export: "
                              f"give at least --minutes {math.ceil(needed * 2) / 2:g}")
    total_steps = cfg.epochs * steps_per_epoch if cfg.epochs else None
    optimizer = tf.keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=1e-4, clipnorm=5.0)
    lr_var = optimizer.learning_rate
    train_step = make_train_step(model, optimizer, spec.num_classes)
    predict = predict_fn(model)
    setup_s = time.monotonic() - started
    trained_s = state.get("trained_s", 0.0)  # time in training steps, across resumes
    steps_done = state.get("steps", 0)

    def progress() -> float:
        """Fraction of the run done: by steps with --epochs, else by the time budget."""
        if total_steps:
            return steps_done / total_steps
        return trained_s / state["train_budget_s"]

    # Fixed by the first run; a resumed run continues the same schedule.
    state.setdefault("train_budget_s", max(train_budget_s, 1.0))
    while progress() < 1.0:
        epoch = state["epoch"] + 1
        t_epoch = time.monotonic()
        sums, count = np.zeros(3), 0
        bar = tqdm(batches.epoch(), total=steps_per_epoch, desc=f"epoch {epoch}", unit="batch",
                   leave=False, mininterval=2.0)
        for images, targets in bar:
            t_step = time.monotonic()
            p = min(progress(), 1.0)
            warm = min(1.0, (steps_done + 1) / 100)  # linear warm-up, then cosine decay
            lr_var.assign(cfg.lr * warm * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p))))
            losses = np.array([float(v) for v in train_step(images, targets)])
            sums, count, steps_done = sums + losses, count + 1, steps_done + 1
            trained_s += time.monotonic() - t_step
            bar.set_postfix(loss=f"{losses[0]:.3f}", refresh=False)
            if progress() >= 1.0:
                break
        bar.close()
        epoch_s = time.monotonic() - t_epoch
        val = summarize(val_truth, float_detections(predict, val_samples, spec), spec.labels)
        record = {"epoch": epoch, "steps": steps_done, "loss": sums[0] / max(count, 1),
                  "heat_loss": sums[1] / max(count, 1), "box_loss": sums[2] / max(count, 1),
                  "val_mAP50": val["mAP50"], "val_mAP75": val["mAP75"], "lr": float(lr_var.numpy()),
                  "seconds": epoch_s}
        state["history"].append(record)
        state.update(epoch=epoch, steps=steps_done, trained_s=trained_s)
        state["elapsed_s"] += time.monotonic() - started
        started = time.monotonic()
        if val["mAP50"] >= state["best_mAP50"]:
            state["best_mAP50"] = val["mAP50"]
            state["best_epoch"] = epoch
            tmp = cfg.workdir / "best.tmp.keras"
            model.save(tmp)
            os.replace(tmp, cfg.workdir / "best.keras")
        if "reached_095_s" not in state and val["mAP50"] >= 0.95:
            state["reached_095_s"] = state["elapsed_s"]
        _save_state(cfg.workdir, model, state)
        plot_curves(state["history"], cfg.workdir / "training_curves.png")
        log.info("epoch %d (%d steps, %.0f%%): loss %.3f, val mAP@0.5 %.3f, mAP@0.75 %.3f (%.0f s, %.1f min total)",
                 epoch, steps_done, 100 * min(progress(), 1.0), record["loss"], val["mAP50"], val["mAP75"],
                 epoch_s, state["elapsed_s"] / 60)
    state["setup_s"] = setup_s
    state["finished"] = True
    atomic_write_text(cfg.workdir / "state.json", json.dumps(state, indent=2))

    result = {"workdir": str(cfg.workdir), "best_epoch": state.get("best_epoch"),
              "val_mAP50": state["best_mAP50"], "train_minutes": state["elapsed_s"] / 60,
              "minutes_to_mAP50_0.95": (state["reached_095_s"] / 60) if "reached_095_s" in state else None}
    if cfg.export:
        best = tf.keras.models.load_model(cfg.workdir / "best.keras", compile=False)
        photos = reviewed_photos(cfg.data, spec, cfg.skip_bad) if cfg.data else None
        reader_source = Path(cfg.init).with_name(spec.reader.file) if cfg.init and spec.reader else None
        from cube_detect.reader_train import ReaderTuning
        result["export"] = export_checkpoint(best, spec, train_samples, val_samples, cfg.out,
                                             training=result, photos=photos, reader_source=reader_source,
                                             data=cfg.data, skip_bad=cfg.skip_bad,
                                             reader_tuning=ReaderTuning(cfg.reader_steps, cfg.digits, cfg.seed))
    return result


# ----------------------------------------------------------------------------- CLI
#: Defaults that differ when fine-tuning (``--init``): a short run at a lower learning rate,
#: fewer synthetic scenes (they keep the model general) and the user's photos half of the samples.
FINE_TUNE_DEFAULTS = {"minutes": 3.0, "synthetic": 1500, "lr": 1e-3, "user_share": 0.5}
_DEFAULTS = {name: f.default for name, f in TrainConfig.__dataclass_fields__.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, ft = _DEFAULTS, FINE_TUNE_DEFAULTS
    parser.add_argument("--data", type=Path, nargs="*", default=[], metavar="DIR",
                        help="labelImg data sets (DIR/train and DIR/test, or the course's DIR/images/train and "
                             "DIR/images/test); none = synthetic only")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help=LABELS_HELP)
    parser.add_argument("--color", action="store_true",
                        help="colour model input (for objects told apart by colour: shapes, hands); default gray")
    parser.add_argument("--flip", action="store_true",
                        help="mirror images in augmentation (for classes that look the same mirrored; "
                             "never for digits)")
    parser.add_argument("--init", type=Path, metavar="MODEL.tflite",
                        help="fine-tune this exported model (its NAME.keras beside it) instead of training from "
                             f"scratch; changes the defaults to --minutes {ft['minutes']:g} --synthetic "
                             f"{ft['synthetic']} --lr {ft['lr']:g}, your photos half of the samples")
    parser.add_argument("--synthetic", type=int, default=None, metavar="N",
                        help=f"synthetic training scenes rendered on the fly (default {d['synthetic']}; 0 = none; "
                             "they show the digits only: 0 for other classes)")
    parser.add_argument("--families", default="", metavar="A,B",
                        help=f"synthetic training scenes from these families only ({', '.join(FAMILIES)}); "
                             "default: the mixture of all")
    parser.add_argument("--digits", choices=("mixed", "generator"), default=d["digits"],
                        help="digits of the synthetic scenes: mixed = half in real people's hands (MNIST, "
                             "handwriting fonts; `make setup` installs them) with camera realism, generator = "
                             f"our stroke model only, as before (default {d['digits']})")
    parser.add_argument("--validation", type=int, default=d["validation"], metavar="N",
                        help="synthetic validation scenes, every family alike, from a seed training never sees "
                             f"(default {d['validation']})")
    parser.add_argument("--minutes", type=float, default=None,
                        help=f"wall-clock budget, export included (default {d['minutes']:g})")
    parser.add_argument("--epochs", type=int, default=d["epochs"],
                        help="fixed number of epochs (overrides --minutes)")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"])
    parser.add_argument("--lr", type=float, default=None,
                        help=f"peak learning rate, cosine decay (default {d['lr']:g})")
    parser.add_argument("--seed", type=int, default=d["seed"], help="fixed seed: data, init and order")
    parser.add_argument("--width", type=int, default=d["width"],
                        help=f"channel multiplier of the network (default {d['width']}; ignored with --init)")
    parser.add_argument("--input-size", type=parse_input_size, default=None, metavar="WxH",
                        help="network input in pixels, multiples of 8 (default 160x120, or the --init model's "
                             "own; with --init the weights carry over to the new size)")
    parser.add_argument("--channels", type=parse_channels, default=None, metavar="STEM,CONTEXT",
                        help="the network's stem filters and context channels (default 16 and 64 times --width); "
                             "with --init, fewer keep the ones that carry most: a smaller, faster network to "
                             "fine-tune (the shipped model: 32,192 of 64,256)")
    parser.add_argument("--reader-steps", type=int, default=d["reader_steps"], metavar="N",
                        help="with --init, when the model has a face reader: tune it on your training photos for "
                             f"N steps after the detector (default {d['reader_steps']}, about 40 s; 0 keeps it as "
                             "it is)")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad data-set files instead of stopping")
    parser.add_argument("--workers", type=int, default=d["workers"],
                        help=f"processes rendering scenes (default {d['workers']})")
    parser.add_argument("--workdir", type=Path, help="checkpoints and plots (default runs/<out name>); "
                        "an interrupted run with the same settings is resumed")
    parser.add_argument("--no-export", action="store_true", help="train only")
    parser.add_argument("--out", required=True, help="model path prefix, e.g. models/mymodel -> "
                        "models/mymodel.tflite + .json + labels.txt")


def parse_input_size(text: str) -> Tuple[int, int]:
    """``--input-size WxH`` -> (width, height); both multiples of the network's stride, 8."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT, e.g. 224x168") from None
    if width < 32 or height < 32 or width % 8 or height % 8:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be multiples of 8, at least 32")
    return width, height


def parse_channels(text: str) -> Tuple[int, int]:
    """``--channels STEM,CONTEXT`` -> (stem filters, context channels), both at least 8."""
    try:
        stem, context = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give STEM,CONTEXT, e.g. 32,192") from None
    if stem < 8 or context < 8:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 8 stem filters and 8 context channels")
    return stem, context


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    out = Path(args.out)
    if out.suffix == ".tflite":
        out = out.with_suffix("")
    defaults: Dict[str, Any] = {**_DEFAULTS, **(FINE_TUNE_DEFAULTS if args.init else {})}
    families = parse_families(args.families, FAMILIES)
    if args.init is not None and not Path(args.init).is_file():
        raise CubeDetectError(f"{args.init}: --init model not found")
    if args.reader_steps < 0:
        raise CubeDetectError(f"--reader-steps {args.reader_steps}: expected 0 (keep the reader) or more")
    for root in args.data:
        images_root(Path(root))  # one clear error for a folder that is not a data set
    labels = resolve_labels([Path(d) for d in args.data], args.labels)
    if labels != LABELS:
        if args.synthetic:
            raise CubeDetectError(f"--synthetic {args.synthetic}: synthetic scenes show the digits only, "
                                  f"not these classes ({describe(labels)}); use --synthetic 0")
        if args.synthetic is None:
            log.info("classes %s: no synthetic scenes (they show the digits only)", describe(labels))
        defaults["synthetic"] = 0

    def pick(name: str):
        value = getattr(args, name)
        return defaults[name] if value is None else value

    return TrainConfig(out=out, workdir=args.workdir or Path("runs") / out.name, data=list(args.data),
                       synthetic=pick("synthetic"), validation=args.validation, minutes=pick("minutes"),
                       epochs=args.epochs, batch_size=args.batch_size, lr=pick("lr"), seed=args.seed,
                       width=args.width, skip_bad=args.skip_bad, workers=args.workers,
                       export=not args.no_export, init=args.init, families=families, digits=args.digits,
                       user_share=float(defaults["user_share"]), labels=labels, color=args.color, flip=args.flip,
                       input_size=args.input_size, channels=args.channels, reader_steps=args.reader_steps)


def run(args: argparse.Namespace) -> int:
    result = train(config_from_args(args))
    print(json.dumps(result, indent=2, default=str))
    return 0
