"""``python -m cube_detect evaluate --model M --data DIR``: how good is a model on labelled images.

Runs the robot's own inference code (LiteRT, letterbox, decoding) on every image of a
labelImg split and reports COCO mAP@0.5 and @0.75 (pycocotools), AP@0.5 per class, one<->two
confusions, and the share of images whose left-to-right label sequence is exactly right.
``--plots DIR`` writes ``pr_curve.png`` and annotated images (detections in colour, truth in
thin green).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
from tqdm import tqdm

from cube_detect.dataset import load_split
from cube_detect.errors import CubeDetectError
from cube_detect.inference import DEFAULT_MODEL, load_detector
from cube_detect.labels import atomic_write_text
from cube_detect.metrics import pr_curves, summarize
from cube_detect.visualize import draw_detections

log = logging.getLogger("cube_detect.evaluate")


def split_dir(data: Path) -> Path:
    """A data set root means its test split; a folder of images + xml is used as it is."""
    if (data / "test").is_dir():
        return data / "test"
    if data.is_dir():
        return data
    raise CubeDetectError(f"{data}: data set folder not found")


def plot_pr(coco_eval, labels, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for iou, style in ((0.5, "-"), (0.75, "--")):
        for cid, (recall, precision) in pr_curves(coco_eval, iou).items():
            ax.plot(recall, precision, style, label=f"{labels[cid]} @IoU {iou}")
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_xlim(0, 1.01), ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3), ax.legend(loc="lower left"), ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(model: Path, data: Path, threshold: float = 0.5, plots: Path = None, max_annotated: int = 40,
             skip_bad: bool = False) -> dict:
    folder = split_dir(Path(data))
    samples = load_split(folder, skip_bad=skip_bad)
    if not samples:
        raise CubeDetectError(f"{folder}: no labelled images")
    detector = load_detector(model, backend="cpu", threshold=threshold, max_detections=10)
    labels, ids = detector.spec.labels, {v: k for k, v in detector.spec.labels.items()}
    truth, found, timings = [], [], []
    if plots:
        (Path(plots) / "annotated").mkdir(parents=True, exist_ok=True)
    for k, sample in enumerate(tqdm(samples, unit="img", leave=False, desc="evaluate")):
        image = cv2.imread(str(sample.image_path), cv2.IMREAD_UNCHANGED)
        # A low threshold for the PR curve; the sequence and confusions use ``threshold``.
        detections = detector.detect(image, threshold=0.05)
        timings.append(detector.last_timing_ms["total"])
        truth.append([(ids[b.label], b.bbox) for b in sample.annotation.boxes])
        found.append(detections)
        if plots and k < max_annotated:
            shown = [d for d in detections if d.score >= threshold]
            gt = [(b.label, b.bbox) for b in sample.annotation.boxes]
            cv2.imwrite(str(Path(plots) / "annotated" / (sample.image_path.stem + ".png")),
                        draw_detections(image, shown, gt))
    result = summarize(truth, found, labels, threshold=threshold)
    coco = result.pop("_coco")
    timings.sort()
    result.update({"model": str(model), "data": str(folder), "threshold": threshold,
                   "backend": detector.backend, "ms_per_image_p50": round(timings[len(timings) // 2], 2)})
    if plots and coco is not None:
        plot_pr(coco, labels, Path(plots) / "pr_curve.png",
                f"{Path(model).name} on {folder} (mAP@0.5 {result['mAP50']:.3f})")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: the shipped model")
    parser.add_argument("--data", type=Path, required=True,
                        help="data set root (its test/ split is used) or a folder of images + VOC xml")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="score threshold for confusions and sequences (default 0.5)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write pr_curve.png and annotated/ here")
    parser.add_argument("--skip-bad", action="store_true")


def run(args: argparse.Namespace) -> int:
    result = evaluate(args.model, args.data, args.threshold, args.plots, skip_bad=args.skip_bad)
    per_class = ", ".join(f"{k} {v:.3f}" for k, v in result["AP50_per_class"].items())
    print(f"{result['images']} images, {result['faces']} faces: mAP@0.5 {result['mAP50']:.3f}, "
          f"mAP@0.75 {result['mAP75']:.3f} (AP@0.5 {per_class}); confusions {result['confusions']}; "
          f"exact sequences {100 * result['sequence_accuracy']:.1f} %; {result['ms_per_image_p50']} ms/image")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0
