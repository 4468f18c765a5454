#!/usr/bin/env python3
"""The one-cell fine-tune proxy: the judge's "19 photos of one cell, 3 minutes, then 13 others".

python -m bench.cell_proxy [--model M] [--cells 12] [--first 1] [--finetune failing|all|none] [--workdir DIR]
                            [--json F] [--train-arg=ARG ...]
    -> one line per cell on stdout and bench/cell_proxy.json (run by hand, like `make bench`;
       about 15 minutes: a few seconds per cell, 2.2-2.4 minutes per fine-tune)

A cell is the same few cubes seen again and again: each simulated cell draws 3 ones, 3 twos and 2
unlabelled marks from the held-out hands (``synth.handwriting``: MNIST samples and fonts that
training never uses; each one or two is a held-out font's with the probability the training mix
gives fonts, ``FONT_SHARE``), and every labelled face of its scenes is one of those glyphs, written
with the pen, slant and light of each scene. Its layouts come from one family (the cell's
camera; cell k uses FAMILIES[(k - 1) % 6]), at 640x480. Each cell gets 19 scenes for the
data set's ``train/``, 13 reviewed ones for its ``test/`` (the fine-tune picks its threshold on
them) and 13 more to judge. The model is judged zero-shot, then fine-tuned as the README says
(``train --data CELL --init MODEL``, its defaults: 3 minutes) and judged again.

What it cannot tell: real cells repeat their background, light and cubes more than these scenes
do (each scene draws its own room), and real pens, paper and lenses differ from ours.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List
from unittest import mock

import numpy as np

from bench import report

ROOT = Path(__file__).resolve().parent.parent
CELL_SEEDS = {"train": 901, "test": 902, "judge": 903}
CELL_SIZES = {"train": 19, "test": 13, "judge": 13}
GLYPHS_PER_CELL = {"one": 3, "two": 3, "other": 2}


def cell_family(cell: int) -> str:
    from cube_detect.synth import FAMILIES
    return FAMILIES[(cell - 1) % len(FAMILIES)]


def cell_pool(cell: int) -> Dict[str, List[np.ndarray]]:
    """The cell's cubes: a few held-out glyphs per class, drawn by the cell number; a one or a two
    is a held-out font's with probability ``FONT_SHARE`` (as in the scenes), else an MNIST writer's."""
    from cube_detect.synth import handwriting
    rng = np.random.default_rng([cell, 7])
    pool: Dict[str, List[np.ndarray]] = {}
    for label, count in GLYPHS_PER_CELL.items():
        mnist, fonts = handwriting.glyphs(label, "heldout")
        from_fonts = min(int((rng.random(count) < handwriting.FONT_SHARE).sum()), len(fonts)) if fonts else 0
        pool[label] = ([fonts[i] for i in rng.choice(len(fonts), from_fonts, replace=False)]
                       + [mnist[i] for i in rng.choice(len(mnist), count - from_fonts, replace=False)])
    return pool


def write_cell(out: Path, cell: int) -> Path:
    """OUT/cell (train/ and reviewed test/) and OUT/judge (test/): the cell's scenes."""
    from cube_detect.dataset_writer import DatasetWriter
    from cube_detect.synth import handwriting
    from cube_detect.synth.families import render_scene
    from cube_detect.voc import read_voc, write_voc

    pool, family = cell_pool(cell), cell_family(cell)
    if out.exists():
        shutil.rmtree(out)
    folders = {"train": out / "cell" / "train", "test": out / "cell" / "test", "judge": out / "judge" / "test"}
    # Every labelled face of a held-out scene is a real hand (handwriting.draw_real_digit): here,
    # one of the cell's glyphs.
    with mock.patch.object(handwriting, "glyphs", lambda label, split: (pool[label], [])):
        for part, folder in folders.items():
            writer = DatasetWriter(folder.parent, test_share=1.0 if part != "train" else 0.0)
            for i in range(CELL_SIZES[part]):
                with handwriting.digit_source("heldout"):
                    image, boxes = render_scene(np.random.default_rng([cell, CELL_SEEDS[part], i, 101]),
                                                (640, 480), family)
                writer.save(image, boxes)
    for xml in folders["test"].glob("*.xml"):  # reviewed: the fine-tune chooses its threshold on them
        write_voc(xml, dataclasses.replace(read_voc(xml), verified=True))
    return out


def judge(model: Path, data: Path) -> dict:
    from cube_detect.evaluate import evaluate
    r = evaluate(model, data)
    return {"exact": round(r["sequence_accuracy"] * r["images"]), "images": r["images"],
            "mAP50": round(r["mAP50"], 3), "threshold": r["threshold"], "confusions": r["confusions"]}


def read_all(result: dict) -> bool:
    return result["exact"] == result["images"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cube_detect.tflite")
    parser.add_argument("--cells", type=int, default=12, help="the last cell (default 12)")
    parser.add_argument("--first", type=int, default=1,
                        help="the first cell (default 1): --first 13 --cells 24 is another 12 cells")
    parser.add_argument("--finetune", choices=("failing", "all", "none"), default="failing",
                        help="fine-tune the cells the model misreads zero-shot (default), all, or none")
    parser.add_argument("--train-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for the fine-tune's `train` (repeat it), e.g. "
                             "--train-arg=--reader-steps=0 keeps the face reader as it is")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "cell_proxy",
                        help="the cells' data sets and fine-tunes (default runs/cell_proxy)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "cell_proxy.json",
                        help="the figures, rewritten after each cell (default bench/cell_proxy.json)")
    args = parser.parse_args()
    from cube_detect.files import atomic_write_text
    model = args.model.resolve()
    result: Dict[str, Any] = {"command": shlex.join(["python", "-m", "bench.cell_proxy", *sys.argv[1:]]),
                              **report.model_fields(model),
                              "first": args.first, "last": args.cells, "finetune": args.finetune, "cells": []}
    for cell in range(args.first, args.cells + 1):
        out = write_cell(args.workdir / f"cell{cell}", cell)
        row: Dict[str, Any] = {"cell": cell, "family": cell_family(cell), "zero_shot": judge(args.model, out / "judge")}
        if args.finetune == "all" or (args.finetune == "failing" and not read_all(row["zero_shot"])):
            t0 = time.time()
            try:
                subprocess.run([sys.executable, "-m", "cube_detect", "train", "--data", str(out / "cell"),
                                "--init", str(args.model), "--out", str(out / "ft"), "--workdir", str(out / "ftrun"),
                                *args.train_arg],
                               check=True, stdout=subprocess.DEVNULL)
                row["fine_tuned"] = judge(out / "ft.tflite", out / "judge")
            except subprocess.CalledProcessError as exc:
                row["fine_tune_error"] = f"train exited {exc.returncode} (its log: {out / 'ftrun'})"
            row["fine_tune_wall_s"] = round(time.time() - t0)
        result["cells"].append(row)
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        zero, ft = row["zero_shot"], row.get("fine_tuned")
        print(f"cell {cell} ({row['family']}): zero-shot {zero['exact']}/{zero['images']} (mAP@0.5 {zero['mAP50']})"
              + (f", fine-tuned {ft['exact']}/{ft['images']} (mAP@0.5 {ft['mAP50']}, threshold {ft['threshold']}, "
                 f"{row['fine_tune_wall_s']} s)" if ft else "")
              + (f", fine-tune failed: {row['fine_tune_error']}" if "fine_tune_error" in row else ""), flush=True)
    rows = result["cells"]
    tuned = [r for r in rows if "fine_tuned" in r]
    print(f"zero-shot: {sum(read_all(r['zero_shot']) for r in rows)} of {len(rows)} cells read every judging photo; "
          f"fine-tuned: {sum(read_all(r['fine_tuned']) for r in tuned)} of {len(tuned)}; figures in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
