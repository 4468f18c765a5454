"""``python -m cube_detect detect IMAGE_OR_DIR...``: batch detection with the robot's inference code.

Prints (or writes with ``--json``) a list of
``{"image": path, "detections": [{"label", "id", "score", "box": [xmin, ymin, xmax, ymax]}]}``
in original-image pixels, sorted left to right (``--sort-axis y``: top to bottom).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import List

import cv2
from tqdm import tqdm

from cube_detect.errors import CubeDetectError, ImageError
from cube_detect.files import atomic_write_text
from cube_detect.images import read_image
from cube_detect.inference import DEFAULT_MODEL, DecodeSettings, load_detector
from cube_detect.visualize import draw_detections

log = logging.getLogger("cube_detect.detect")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def collect_images(paths: List[Path]) -> List[Path]:
    images = []
    for path in paths:
        if path.is_dir():
            images += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            images.append(path)
        else:
            raise CubeDetectError(f"{path}: no such image or folder")
    return images


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_DIR")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help="model .tflite (its _edgetpu twin is used when a TPU is present); "
                             "default: the shipped model")
    parser.add_argument("--threshold", type=float, default=None,
                        help="minimum score (default: the model's calibrated threshold, in its sidecar)")
    parser.add_argument("--max", type=int, default=DecodeSettings.max_cubes, dest="max_cubes",
                        help="at most N faces per image (default 4: the arm's row; raise it for other objects, "
                             "e.g. 9 on a board)")
    parser.add_argument("--sort-axis", choices=["x", "y"], default=DecodeSettings.sort_axis)
    parser.add_argument("--backend", choices=["auto", "edgetpu", "cpu"], default="auto")
    parser.add_argument("--json", type=Path, help="write the results here instead of stdout")
    parser.add_argument("--annotate", type=Path, metavar="DIR", help="write annotated copies here")


def run(args: argparse.Namespace) -> int:
    images = collect_images(args.inputs)
    if not images:
        raise CubeDetectError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, args.inputs))}")
    decoding = DecodeSettings(threshold=args.threshold, max_cubes=args.max_cubes, sort_axis=args.sort_axis)
    detector = load_detector(args.model, backend=args.backend, decoding=decoding)
    log.info("%s", detector.backend_reason)
    if args.annotate:
        args.annotate.mkdir(parents=True, exist_ok=True)
    results: List[dict] = []
    failed = 0
    for path in tqdm(images, unit="img", disable=len(images) < 10, leave=False):
        image = read_image(path)
        try:
            if image is None:
                raise ImageError("cannot be read as an 8-bit image")
            detections = detector.detect(image)
        except ImageError as exc:
            log.error("%s: %s", path, exc)
            results.append({"image": str(path), "error": str(exc), "detections": []})
            failed += 1
            continue
        results.append({"image": str(path), "detections": [d.to_dict() for d in detections]})
        if args.annotate:
            cv2.imwrite(str(args.annotate / (path.stem + ".png")), draw_detections(image, detections))
    text = json.dumps(results, indent=2)
    if args.json:
        atomic_write_text(args.json, text + "\n")
        log.info("%d images, %d faces -> %s", len(results),
                 sum(len(r["detections"]) for r in results), args.json)
    else:
        print(text)
    return 1 if failed else 0
