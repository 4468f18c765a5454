"""``python -m cube_detect <command>``: one entry point for the workstation tools.

Each command lives in the module named after its stage; this file only dispatches, and
imports a stage's module (and so TensorFlow, for training) only when that command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable, List, Optional

from cube_detect.errors import CubeDetectError

#: command -> (module, one-line help). Each module defines ``add_arguments(parser)``
#: and ``run(args) -> int``; ``module:NAME`` names a second command of a module, with
#: ``add_NAME_arguments`` and ``run_NAME``.
COMMANDS = {
    "synth": ("cube_detect.synth", "generate synthetic labelled scenes (labelImg VOC layout)"),
    "stats": ("cube_detect.stats", "check a data set and count images and faces per split and class"),
    "review": ("cube_detect.review", "review and correct a data set's boxes in the browser (local web page)"),
    "train": ("cube_detect.train", "train the detector from scratch and export it"),
    "train-reader": ("cube_detect.reader_train",
                     "train a model's face reader (reads each proposed face again) and export it"),
    "export": ("cube_detect.export", "export a training checkpoint to 8-bit TFLite (+ Edge TPU)"),
    "check": ("cube_detect.edgetpu_check", "check a .tflite model against the Edge TPU compiler's rules"),
    "evaluate": ("cube_detect.evaluate", "mAP, per-class AP, confusions and PR curves on a labelled data set"),
    "robustness": ("cube_detect.evaluate:robustness",
                   "per scene family: mAP@0.5 and exact sequences on fixed synthetic tests"),
    "detect": ("cube_detect.detect", "detect cube faces in images, sorted left to right"),
    "doctor": ("cube_detect.ros.doctor", "diagnose a cell: master, camera, frame, model, backend, protocol"),
}


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cube_detect",
        description="cube_detect workstation tools: synthetic scenes, data sets, training, export, "
                    "Edge TPU check, evaluation and batch detection.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported: `detect --help` must not load TensorFlow.
        if name == command:
            _entry(module_name, "add_{}arguments")(sub_parser)
    return parser


def _entry(spec: str, pattern: str) -> Callable:
    """``add_arguments`` / ``run`` (or ``add_NAME_arguments`` / ``run_NAME``) of a command's module."""
    module_name, _, variant = spec.partition(":")
    suffix = f"{variant}_" if pattern.startswith("add") and variant else f"_{variant}" if variant else ""
    return getattr(importlib.import_module(module_name), pattern.format(suffix))


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    run = _entry(COMMANDS[args.command][0], "run{}")
    try:
        return int(run(args) or 0)
    except CubeDetectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("cube_detect").warning("interrupted")
        return 130
