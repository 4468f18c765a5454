"""Training data in memory: model-sized samples and their ground truth (no TensorFlow).

The data-loading half of training, shared by ``train`` (training and validation) and
``export`` (calibration images for the int8 converter, float-vs-int8 figures):

- a :data:`Sample` is a letterboxed gray image (the same ``letterbox`` inference uses) and its
  boxes ``(class_index, x1, y1, x2, y2)`` in model pixels;
- ``synthetic_samples`` renders scenes (``synth``), ``dataset_samples`` reads a labelImg split;
- ``load_data`` gathers both for a run; ``ground_truth`` and ``float_detections`` turn samples
  and a float network's outputs into the inputs of :func:`cube_detect.metrics.summarize`.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from cube_detect.boxes import BBox
from cube_detect.dataset import images_root, load_split
from cube_detect.errors import CubeDetectError, DatasetError
from cube_detect.images import read_image
from cube_detect.inference import DecodeSettings, Detection, decode, model_input
from cube_detect.metrics import GroundTruth
from cube_detect.modelspec import ModelSpec
from cube_detect.synth import FAMILIES, init_worker, render_indexed
from cube_detect.voc import LabeledBox

log = logging.getLogger(__name__)

# A sample in memory: model-sized gray image + boxes (class_index, x1, y1, x2, y2) in model pixels.
Sample = Tuple[np.ndarray, np.ndarray]
#: Synthetic validation scenes come from seed + this offset: they never overlap training ones.
VALIDATION_SEED_OFFSET = 7_919


#: Class index of a face marked VOC ``difficult`` in a sample: training ignores its region
#: (model.encode_targets: no positive, no penalty), validation neither counts it nor a detection on it.
DIFFICULT = -1


def to_sample(image: np.ndarray, boxes: Sequence[LabeledBox], spec: ModelSpec) -> Sample:
    """Letterbox one original image (as inference does) and scale its VOC boxes to model pixels;
    a ``difficult`` face gets the class index :data:`DIFFICULT`."""
    boxed, scale = model_input(image, spec)
    name_to_index = {spec.labels[cid]: i for i, cid in enumerate(spec.class_ids)}
    rows = [(DIFFICULT if b.difficult else name_to_index[b.label], *b.bbox.scale(scale)) for b in boxes]
    return boxed, np.array(rows, np.float32).reshape(-1, 5)


def _synthetic_sample(job: Tuple[int, int, Optional[str], str, ModelSpec]) -> Sample:
    seed, index, family, digits, spec = job
    image, boxes = render_indexed(seed, index, family=family, digits=digits)
    return to_sample(image, boxes, spec)


def synthetic_samples(seed: int, count: int, spec: ModelSpec, workers: int, desc: str,
                      families: Sequence[str] = (), digits: str = "generator") -> List[Sample]:
    """Synthetic scenes ``0 .. count-1`` of ``seed`` as samples, rendered by ``workers`` processes.

    ``families`` empty: each scene's family drawn from synth's training mixture; else scene i is
    of family ``families[i % len(families)]`` (an even share of each). ``digits``: synth's digit
    source (``mixed``: real hands for half the faces, and camera realism)."""
    jobs = [(seed, i, families[i % len(families)] if families else None, digits, spec) for i in range(count)]
    if workers <= 1 or count < 50:
        return [_synthetic_sample(j) for j in tqdm(jobs, desc=desc, unit="img", leave=False)]
    # spawn, not fork: pip's OpenCV deadlocks in a forked child once the parent has used it.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=init_worker) as pool:
        return list(tqdm(pool.imap(_synthetic_sample, jobs, chunksize=16), total=count, desc=desc,
                         unit="img", leave=False))


def dataset_samples(root: Path, split: str, spec: ModelSpec, skip_bad: bool,
                    reviewed_only: bool = False) -> List[Sample]:
    """The ``split`` (train/test) of a labelImg data set as samples; none when it has no such
    folder. ``reviewed_only``: only images a person accepted (labelImg's verified="yes")."""
    split_dir = images_root(Path(root)) / split
    if not split_dir.is_dir():
        return []
    samples = []
    for item in load_split(split_dir, skip_bad, spec.labels.values()):
        if reviewed_only and not item.annotation.verified:
            continue
        image = read_image(item.image_path)
        if image is None:
            message = f"{item.image_path}: not a readable 8-bit image (truncated, or 16-bit?)"
            if not skip_bad:
                raise DatasetError(message)
            log.warning("skipping: %s", message)
            continue
        samples.append(to_sample(image, item.annotation.boxes, spec))
    return samples


def reviewed_photos(data: Sequence[Path], spec: ModelSpec, skip_bad: bool = False) -> List[Sample]:
    """The reviewed images of the data sets' test splits: what a fine-tune's threshold is chosen on."""
    return [s for root in data for s in dataset_samples(root, "test", spec, skip_bad, reviewed_only=True)]


def load_data(spec: ModelSpec, data: Sequence[Path], synthetic: int, validation: int, seed: int,
              workers: int = 2, skip_bad: bool = False, families: Sequence[str] = (),
              user_share: float = 1 / 3, digits: str = "generator") -> Tuple[List[Sample], List[Sample]]:
    """(train, validation) samples of a run: the data sets' train/ and test/ splits, plus
    ``synthetic`` training scenes of ``seed`` (of ``families``, default the mixture) and
    ``validation`` scenes of a seed training never sees, every family alike (or only
    ``families``). The user's photos are repeated to be at least ``user_share`` of the
    training samples: 20 photos must weigh against thousands of synthetic scenes. ``digits``:
    synth's digit source for both the training and the validation scenes."""
    train: List[Sample] = []
    val: List[Sample] = []
    for root in data:
        if not Path(root).is_dir():
            raise CubeDetectError(f"{root}: data set folder not found")
        user_train = dataset_samples(root, "train", spec, skip_bad)
        user_val = dataset_samples(root, "test", spec, skip_bad)
        if not user_train:
            raise CubeDetectError(f"{images_root(Path(root)) / 'train'}: no labelled training images")
        log.info("data set %s: %d train, %d test images", root, len(user_train), len(user_val))
        train += user_train
        val += user_val
    user_count = len(train)
    if synthetic:
        t0 = time.monotonic()
        train += synthetic_samples(seed, synthetic, spec, workers, "synthetic train", families, digits)
        val += synthetic_samples(seed + VALIDATION_SEED_OFFSET, validation, spec, workers,
                                 "synthetic validation", families or FAMILIES, digits)
        log.info("rendered %d + %d synthetic scenes in %.0f s", synthetic, validation, time.monotonic() - t0)
    if not train:
        raise CubeDetectError("no training images: give --data DIR (with DIR/train) and/or --synthetic N")
    if not val:  # user data without a test split: hold out every 10th image
        val, train = train[::10], [s for i, s in enumerate(train) if i % 10]
    if user_count and synthetic:
        user_count = min(user_count, len(train) - synthetic)  # after the hold-out above
        repeat = max(1, round(user_share / (1 - user_share) * synthetic / max(user_count, 1)))
        train += [s for s in train[:user_count] for _ in range(repeat - 1)]
        log.info("your %d training photos x %d = %.0f %% of the training samples", user_count, repeat,
                 100 * user_count * repeat / len(train))
    return train, val


def batch_of(images: Sequence[np.ndarray]) -> np.ndarray:
    """Model-sized uint8 images (HxW gray or HxWx3) -> a float32 batch in [0, 1], NHWC."""
    batch = np.stack(images).astype(np.float32) / 255.0
    return batch[..., None] if batch.ndim == 3 else batch


def ground_truth(samples: Sequence[Sample], spec: ModelSpec) -> List[GroundTruth]:
    """Per sample: ``[(class_id, BBox, difficult), ...]`` in model pixels (a difficult face's
    class is unknown here: any id, it is ignored by the metrics)."""
    ids = spec.class_ids
    return [[(ids[max(int(c), 0)], BBox(x1, y1, x2, y2), int(c) == DIFFICULT) for c, x1, y1, x2, y2 in s[1]]
            for s in samples]


def float_detections(predict: Callable, samples: Sequence[Sample], spec: ModelSpec, threshold: float = 0.05,
                     batch_size: int = 64) -> List[List[Detection]]:
    """Run a float network (``predict(images) -> (heatmaps, boxes)`` tensors) on model-sized
    samples; detections in model pixels, decoded as on the robot."""
    decoding = DecodeSettings(threshold=threshold, max_cubes=10)
    out = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        images = batch_of([s[0] for s in chunk])
        heat, boxes = (t.numpy() for t in predict(images))
        out += [decode(h, b, spec, decoding) for h, b in zip(heat, boxes)]
    return out
