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
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from cube_detect.dataset import load_split
from cube_detect.errors import CubeDetectError
from cube_detect.files import atomic_write_text
from cube_detect.images import median_colour, read_image
from cube_detect.inference import DEFAULT_MODEL, DecodeSettings, Detection, Detector, load_detector
from cube_detect.metrics import detection_f1, ground_truth_of, is_difficult, pr_curves, summarize
from cube_detect.modelspec import ModelSpec, sidecar_path
from cube_detect.synth import EVALUATION_FAMILIES, HELDOUT_FAMILY, handwriting, parse_families, render_indexed
from cube_detect.synth.realism import defocus as lens_defocus
from cube_detect.synth.realism import low_light
from cube_detect.thresholds import MIN_REVIEWED_PHOTOS, choose_threshold, criterion_for
from cube_detect.visualize import draw_detections

log = logging.getLogger("cube_detect.evaluate")


#: Fewer scored images than this make a shaky figure: evaluate says so.
FEW_IMAGES = 20


def split_dirs(data: Path, split: str = "test") -> List[Path]:
    """The folders ``evaluate`` scores: a data set root (or the course's project folder) gives
    its ``split`` (``test``, ``train``, or ``all``: both); a folder of images + xml is used as it is."""
    for root in (data, data / "images"):
        if (root / "train").is_dir() or (root / "test").is_dir():
            wanted = ("train", "test") if split == "all" else (split,)
            found = [root / s for s in wanted if (root / s).is_dir()]
            if not found:
                raise CubeDetectError(f"{data}: no {split}/ split (--split train, test or all)")
            return found
    if data.is_dir():
        return [data]
    raise CubeDetectError(f"{data}: data set folder not found")


def plot_pr(coco_eval, labels, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for iou, style in ((0.5, "-"), (0.75, "--")):
        for cid, (recall, precision) in pr_curves(coco_eval, iou).items():
            ax.plot(recall, precision, style, label=f"{labels[cid]} @IoU {iou}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set(xlim=(0, 1.01), ylim=(0, 1.01), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(model: Path, data: Path, threshold: Optional[float] = None, plots: Optional[Path] = None,
             max_annotated: int = 40, skip_bad: bool = False, split: str = "test") -> dict:
    folders = split_dirs(Path(data), split)
    folder = folders[0] if len(folders) == 1 else Path(data)
    detector = load_detector(model, backend="cpu", decoding=DecodeSettings(threshold=threshold, max_cubes=10))
    samples = [s for f in folders for s in load_split(f, skip_bad, detector.spec.labels.values())]
    if not samples:
        raise CubeDetectError(f"{', '.join(map(str, folders))}: no labelled images")
    threshold = detector.threshold  # None: the model's calibrated default
    labels, ids = detector.spec.labels, {v: k for k, v in detector.spec.labels.items()}
    truth, found, timings, reviewed = [], [], [], []
    if plots:
        (Path(plots) / "annotated").mkdir(parents=True, exist_ok=True)
    for k, sample in enumerate(tqdm(samples, unit="img", leave=False, desc="evaluate")):
        image = read_image(sample.image_path)
        if image is None:
            if not skip_bad:
                raise CubeDetectError(f"{sample.image_path}: not a readable 8-bit image (truncated, or 16-bit?); "
                                      "--skip-bad skips it")
            log.warning("skipping %s: not a readable 8-bit image", sample.image_path)
            continue
        # A low threshold for the PR curve; the sequence and confusions use ``threshold``.
        detections = detector.detect(image, threshold=0.05)
        timings.append(detector.last_timing_ms["total"])
        truth.append(ground_truth_of(sample.annotation.boxes, ids))
        found.append(detections)
        reviewed.append(sample.annotation.verified)
        if plots and k < max_annotated:
            shown = [d for d in detections if d.score >= threshold]
            gt = [(b.label, b.bbox, b.difficult) for b in sample.annotation.boxes]
            cv2.imwrite(str(Path(plots) / "annotated" / (sample.image_path.stem + ".png")),
                        draw_detections(image, shown, gt))
    result = summarize(truth, found, labels, threshold=threshold)
    coco = result.pop("_coco")
    # How the arm would fare at every candidate threshold, on these photos: the curve the user
    # reads, and what --set-threshold writes into the sidecar. Only reviewed images when there
    # are any: on the model's own unreviewed pre-annotations every threshold looks right.
    criterion = criterion_for(labels)
    kept = [k for k, r in enumerate(reviewed) if r] or list(range(len(truth)))
    best, curve = choose_threshold([truth[k] for k in kept], [found[k] for k in kept], criterion, real_photos=True)
    result["f1"] = detection_f1(truth, found, threshold)
    result.update({"criterion": criterion, "by_threshold": curve, "best_threshold": best,
                   "curve_images": len(kept), "reviewed_images": sum(reviewed)})
    timings.sort()
    what = "the folder" if folders == [Path(data)] else f"split {split}"
    result.update({"model": str(model), "data": str(folder), "split": what, "folders": [str(f) for f in folders],
                   "threshold": threshold,
                   "backend": detector.backend, "ms_per_image_p50": round(timings[len(timings) // 2], 2)})
    if plots and coco is not None:
        plot_pr(coco, labels, Path(plots) / "pr_curve.png",
                f"{Path(model).name} on {folder} (mAP@0.5 {result['mAP50']:.3f})")
    return result


# ----------------------------------------------------------------------------- robustness suite
#: The fixed test scenes of every family: seeds training never uses (training: --seed, default 0;
#: its validation: seed + 7919), so the table compares models on the same unseen scenes.
ROBUSTNESS_SEED = 424_242


def zoomed_out(image: np.ndarray, boxes: Sequence[tuple], factor: float) -> Tuple[np.ndarray, List[tuple]]:
    """The scene as a camera ``factor`` times farther away would frame it, as issue #19 measured it
    on real photos: the image centred on a canvas ``factor`` times its size, filled with its median
    colour, so every face is 1/``factor`` as large in the network's input. ``boxes``: (class id,
    (x1, y1, x2, y2), ...), returned shifted with the image (what follows the box kept)."""
    if factor < 1.0:
        raise ValueError(f"zoom-out factor must be at least 1, got {factor}")
    h, w = image.shape[:2]
    big_h, big_w = int(round(h * factor)), int(round(w * factor))
    y0, x0 = (big_h - h) // 2, (big_w - w) // 2
    canvas = np.empty((big_h, big_w) + image.shape[2:], image.dtype)
    canvas[:] = np.rint(median_colour(image)).astype(image.dtype).reshape(image.shape[2:])
    canvas[y0:y0 + h, x0:x0 + w] = image
    return canvas, [(c, (b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0), *rest) for c, b, *rest in boxes]


#: The sensor noise of :func:`shifted_camera`'s dim room, in grey levels before the gain, and the
#: stream of its per-scene generator (after the scene's seed and index; not the family's, so scene
#: i of every family gets the same noise field: harmless, the scenes differ).
DIM_NOISE, DIM_NOISE_STREAM = 2.0, 61
#: Bounds of robustness's camera shifts: a disk blur of at most this many pixels per 640 px of width.
MAX_DEFOCUS = 20.0


def shifted_camera(image: np.ndarray, defocus: float = 0.0, light: float = 1.0,
                   rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The scene through a worse camera than the one it was rendered with: a lens out of focus
    (a disk blur of ``defocus`` pixels per 640 px of the frame's width, at least 1 px; 0: in focus)
    and a room with ``light`` of the light (1: as rendered), the sensor's gain bringing the frame
    back to its full brightness with the noise that comes with it (:data:`DIM_NOISE` grey levels
    before the gain, so ``DIM_NOISE / light`` after; drawn from ``rng``). Training's camera realism
    (``synth.realism``) blurs and dims with the same functions, on some scenes, at random strengths
    and with a gain that brings back 60-100 % of the brightness; here every scene alike, at a fixed
    strength, rounded to the nearest level."""
    if defocus == 0.0 and light == 1.0:
        return image
    img = image.astype(np.float32)
    if defocus > 0.0:
        img = lens_defocus(img, defocus * image.shape[1] / 640)
    if light != 1.0:
        img = low_light(img, light, 1.0 / light, DIM_NOISE, rng if rng is not None else np.random.default_rng(0))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def robustness(detector: Detector, count: int = 100, families: Sequence[str] = EVALUATION_FAMILIES,
               seed: int = ROBUSTNESS_SEED, sheet: Optional[Path] = None, per_row: int = 4,
               zoom_out: float = 1.0, defocus: float = 0.0, light: float = 1.0) -> Dict[str, dict]:
    """The regression table: per scene family, ``count`` fixed synthetic test scenes through the
    robot's own inference (original-size images, letterbox, LiteRT, decode); mAP@0.5 and exact
    sorted sequences at the detector's threshold, and the scores of the true faces the detector
    matched (IoU >= 0.5, right class): their 10th percentile and median (a face not found at all
    counts as score 0). ``sheet``: a picture of the first ``per_row`` scenes of each family with
    the detections the arm would get. Family ``handwriting`` is the held-out one (hands training
    never saw, layouts of all six). ``zoom_out`` > 1: every scene as a camera that much farther away
    sees it (:func:`zoomed_out`); ``defocus`` > 0 or ``light`` < 1: every scene through a lens out
    of focus or in a dim room (:func:`shifted_camera`, before any zoom-out: the photo, then framed)."""
    ids = {v: k for k, v in detector.spec.labels.items()}
    table: Dict[str, dict] = {}
    rows = []
    for family in families:
        truth, found, shown = [], [], []
        for i in tqdm(range(count), desc=family, unit="img", leave=False):
            image, boxes = render_indexed(seed, i, family=family)
            faces = ground_truth_of(boxes, ids)
            image = shifted_camera(image, defocus, light, np.random.default_rng([seed, i, DIM_NOISE_STREAM]))
            if zoom_out != 1.0:
                image, faces = zoomed_out(image, faces, zoom_out)
            truth.append(faces)
            found.append(detector.detect(image, threshold=0.05))
            if sheet is not None and i < per_row:
                kept = [d for d in found[-1] if d.score >= detector.threshold]
                truth_drawn = [(detector.spec.labels[c], b, *rest) for c, b, *rest in faces]
                shown.append(cv2.resize(draw_detections(image, kept, truth_drawn),
                                        (320, 240), interpolation=cv2.INTER_AREA))
        if shown:
            rows.append(_labelled_row(family, shown, per_row))
        result = summarize(truth, found, detector.spec.labels, threshold=detector.threshold)
        scores = true_face_scores(truth, found)
        table[family] = {"images": result["images"], "faces": result["faces"], "difficult": result["difficult"],
                         "mAP50": round(result["mAP50"], 4),
                         "exact_sequences": round(result["sequence_accuracy"], 4),
                         "true_score_p10": round(float(np.percentile(scores, 10)), 3) if scores else None,
                         "true_score_median": round(float(np.median(scores)), 3) if scores else None,
                         "confusions": result["confusions"]}
    if sheet is not None and rows:
        Path(sheet).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sheet), np.vstack(rows))
    return table


def true_face_scores(truth: Sequence[Sequence[tuple]], found: Sequence[Sequence[Detection]]) -> List[float]:
    """Per true face, the best score of a detection of its class at IoU >= 0.5 (0 when none):
    how sure the model is of the faces it should find, whatever the threshold. A ``difficult``
    face (:func:`~cube_detect.metrics.is_difficult`) is not one of them."""
    scores = []
    for faces, detections in zip(truth, found):
        for class_id, box in (face[:2] for face in faces if not is_difficult(face)):
            scores.append(max((d.score for d in detections if d.class_id == class_id and d.box.iou(box) >= 0.5),
                              default=0.0))
    return scores


def _labelled_row(title: str, tiles: Sequence[np.ndarray], per_row: int) -> np.ndarray:
    """A strip of ``per_row`` 320x240 tiles behind a 110-px caption column."""
    tiles = list(tiles) + [np.zeros((240, 320, 3), np.uint8)] * (per_row - len(tiles))
    caption = np.full((240, 110, 3), 255, np.uint8)
    cv2.putText(caption, title, (6, 126), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    strip = np.hstack([caption] + [np.pad(t, ((0, 0), (2, 2), (0, 0)), constant_values=255) for t in tiles])
    return np.pad(strip, ((2, 2), (0, 0), (0, 0)), constant_values=255)


def format_robustness(table: Dict[str, dict], threshold: float) -> str:
    """The per-family table in Markdown (as in the README)."""
    lines = [f"| family | images | faces | mAP@0.5 | exact sequences (threshold {threshold:.2f}) "
             "| true-face score p10 | median |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for family, row in table.items():
        name = f"{family} (held out)" if family == HELDOUT_FAMILY else family
        p10, median = row.get("true_score_p10"), row.get("true_score_median")
        lines.append(f"| {name} | {row['images']} | {row['faces']} | {row['mAP50']:.3f} | "
                     f"{100 * row['exact_sequences']:.1f} % | {'-' if p10 is None else f'{p10:.2f}'} | "
                     f"{'-' if median is None else f'{median:.2f}'} |")
    return "\n".join(lines)


def add_robustness_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: the shipped model")
    parser.add_argument("--count", type=int, default=100, help="scenes per family (default 100)")
    parser.add_argument("--families", default=",".join(EVALUATION_FAMILIES),
                        help=f"comma-separated (default: all; {HELDOUT_FAMILY} = hands training never saw)")
    parser.add_argument("--threshold", type=float, default=None, help="default: the model's calibrated one")
    parser.add_argument("--zoom-out", type=float, default=1.0, metavar="F",
                        help="every scene as a camera F times farther away sees it: centred on a canvas F times "
                             "the frame, filled with its median colour (faces 1/F as large; default 1 = as rendered)")
    parser.add_argument("--defocus", type=float, default=0.0, metavar="R",
                        help="every scene through a lens out of focus: a disk blur of R pixels (1 to 20) per 640 px "
                             "of width (training's camera realism blurs 20 %% of its scenes by 1.5-16, log-uniform; "
                             "default 0 = sharp); applied to the frame before any --zoom-out")
    parser.add_argument("--dim", type=float, default=1.0, metavar="L",
                        help="every scene in a dim room: L of the light (0 < L <= 1), the sensor's gain bringing "
                             "it back with noise of 2/L grey levels (training's camera realism dims 15 %% of its "
                             "scenes to 0.2-0.5, noise 1-3 levels before a gain back to 60-100 %%; default 1 = "
                             "as rendered); applied to the frame before any --zoom-out")
    parser.add_argument("--json", type=Path, help="write the table here")
    parser.add_argument("--sheet", type=Path, metavar="PNG",
                        help="write a picture: the first scenes of each family with their detections")


def run_robustness(args: argparse.Namespace) -> int:
    families = parse_families(args.families, EVALUATION_FAMILIES)
    if HELDOUT_FAMILY in families:
        log.info("%s", handwriting.check_data())
    if args.count < 1:
        raise CubeDetectError(f"--count must be at least 1, got {args.count}")
    if not 1.0 <= args.zoom_out <= 4.0:
        raise CubeDetectError(f"--zoom-out must be from 1 to 4 (times the frame), got {args.zoom_out:g}")
    if not (args.defocus == 0.0 or 1.0 <= args.defocus <= MAX_DEFOCUS):
        raise CubeDetectError(f"--defocus must be 0 (sharp) or from 1 to {MAX_DEFOCUS:g} (pixels per 640 of "
                              f"width), got {args.defocus:g}")
    if not 0.0 < args.dim <= 1.0:
        raise CubeDetectError(f"--dim must be above 0 and at most 1 (the share of the light), got {args.dim:g}")
    # The model's calibrated threshold unless --threshold; up to 10 faces, so mAP sees every candidate.
    detector = load_detector(args.model, backend="cpu", decoding=DecodeSettings(threshold=args.threshold, max_cubes=10))
    threshold = detector.threshold
    table = robustness(detector, args.count, families, sheet=args.sheet, zoom_out=args.zoom_out,
                       defocus=args.defocus, light=args.dim)
    if args.defocus or args.dim != 1.0:
        print("scenes through a shifted camera:" + (f" out of focus (disk of {args.defocus:g} px per 640)"
                                                     if args.defocus else "")
              + (f" in {args.dim:g} of the light (noise {DIM_NOISE / args.dim:.1f} grey levels)"
                 if args.dim != 1.0 else ""))
    if args.zoom_out != 1.0:
        print(f"scenes zoomed out {args.zoom_out:g}x (faces 1/{args.zoom_out:g} as large)")
    print(format_robustness(table, threshold))
    if args.json:
        atomic_write_text(args.json, json.dumps({"model": str(args.model), "threshold": threshold,
                                                 "seed": ROBUSTNESS_SEED, "zoom_out": args.zoom_out,
                                                 "defocus": args.defocus, "dim": args.dim,
                                                 "families": table}, indent=2) + "\n")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help=f"default: the shipped model ({DEFAULT_MODEL.name})")
    parser.add_argument("--data", type=Path, required=True,
                        help="data set root (its --split is scored, test by default) or a folder of images + VOC xml")
    parser.add_argument("--threshold", type=float, default=None,
                        help="score threshold for confusions and sequences (default: the model's calibrated one)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write pr_curve.png and annotated/ here")
    parser.add_argument("--split", choices=("test", "train", "all"), default="test",
                        help="which split of a data set to score (default test: the images training never saw; "
                             "all = train + test, for a fine-tuned model only test is fair)")
    parser.add_argument("--set-threshold", action="store_true",
                        help="write the best threshold on these photos into the model's sidecar (NAME.json; needs "
                             f"--model and at least {MIN_REVIEWED_PHOTOS} reviewed images; the .tflite is untouched)")
    parser.add_argument("--skip-bad", action="store_true")


def format_curve(result: dict) -> str:
    """The exact-sequence (or F1) curve by threshold, one line, the chosen (pick_threshold) and the model's marked."""
    name = "exact sequences" if result["criterion"] == "exact_sequences" else "F1"
    cells = []
    for t, v in result["by_threshold"].items():
        mark = "*" if float(t) == result["best_threshold"] else ""
        mark += "<" if abs(float(t) - result["threshold"]) < 1e-9 else ""
        cells.append(f"{t}: {100 * v:.0f}{mark}")
    which = "reviewed " if result["reviewed_images"] else ""
    return (f"{name} (%) by threshold ({result['curve_images']} {which}images; * chosen, < in use): "
            + ", ".join(cells))


def set_threshold(model: Path, threshold: float, source: str) -> Path:
    """Write ``threshold`` as the default of ``model``'s sidecar (atomically). The model file is
    untouched, so the sidecar's sha256 of it stays valid."""
    path = sidecar_path(model)
    spec = ModelSpec.load(path)
    old = spec.threshold
    spec.threshold = threshold
    spec.extra.setdefault("metrics", {})["threshold_source"] = source
    spec.save(path)
    log.info("%s: default threshold %.2f -> %.2f (chosen on %s)", path, old, threshold, source)
    return path


def warnings_for(result: dict) -> List[str]:
    """What makes the figures weak, one line each: too few images, nothing reviewed."""
    lines = []
    if result["images"] < FEW_IMAGES:
        lines.append(f"only {result['images']} images scored ({result['split']}): a shaky figure; "
                     f"--split all scores train/ too, or capture more")
    if not result["reviewed_images"]:
        lines.append(f"none of the {result['images']} images is reviewed (verified): if their XML are the "
                     "capture's pre-annotations, this scores the model against its own guesses; review them first")
    return lines


def run(args: argparse.Namespace) -> int:
    model = args.model or DEFAULT_MODEL
    if args.set_threshold and args.model is None:
        raise CubeDetectError("--set-threshold changes the model's sidecar: name the model with --model "
                              f"(the shipped one is {DEFAULT_MODEL}, tracked by git: name it to change it)")
    result = evaluate(model, args.data, args.threshold, args.plots, skip_bad=args.skip_bad, split=args.split)
    print(f"scored {result['images']} images of {result['split']} ({', '.join(result['folders'])}), "
          f"{result['reviewed_images']} of them reviewed")
    for line in warnings_for(result):
        log.warning("%s", line)
    per_class = ", ".join(f"{k} {v:.3f}" for k, v in result["AP50_per_class"].items())
    hard = f" (+ {result['difficult']} marked difficult: neither hit nor miss)" if result.get("difficult") else ""
    print(f"{result['images']} images, {result['faces']} faces{hard}: mAP@0.5 {result['mAP50']:.3f}, "
          f"mAP@0.75 {result['mAP75']:.3f} (AP@0.5 {per_class}); confusions {result['confusions']}; "
          + (f"exact sequences {100 * result['sequence_accuracy']:.1f} %" if result["criterion"] == "exact_sequences"
             else f"F1 {result['f1']:.3f} (objects need not stand in a row)")
          + f"; {result['ms_per_image_p50']} ms/image")
    print(format_curve(result))
    if args.set_threshold:
        if result["reviewed_images"] < MIN_REVIEWED_PHOTOS:
            raise CubeDetectError(f"--set-threshold: only {result['reviewed_images']} reviewed images in "
                                  f"{result['data']} ({MIN_REVIEWED_PHOTOS} needed; review them first)")
        set_threshold(model, result["best_threshold"],
                      f"evaluate on {result['data']} ({result['images']} images, {result['reviewed_images']} reviewed)")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0
