#!/usr/bin/env python3
"""The one-cell fine-tune proxy: the judge's "19 photos of one cell, 3 minutes, then 13 others".

python -m bench.cell_proxy [--model M] [--cells 12] [--finetune failing|all|none] [--workdir DIR]
    -> a table on stdout and DIR/cell_proxy.json (run by hand, like `make bench`; minutes per cell)

A cell is the same few cubes seen again and again: each simulated cell draws 3 ones, 3 twos and 2
unlabelled marks from the held-out hands (``synth.handwriting``: MNIST samples and fonts that
training never uses), and every labelled face of its scenes is one of those glyphs, written
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
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CELL_SEEDS = {"train": 901, "test": 902, "judge": 903}
CELL_SIZES = {"train": 19, "test": 13, "judge": 13}
GLYPHS_PER_CELL = {"one": 3, "two": 3, "other": 2}


def cell_family(cell: int) -> str:
    from cube_detect.synth import FAMILIES
    return FAMILIES[(cell - 1) % len(FAMILIES)]


def cell_pool(cell: int) -> Dict[str, List[np.ndarray]]:
    """The cell's cubes: a few held-out glyphs per class, drawn by the cell number."""
    from cube_detect.synth import handwriting
    rng = np.random.default_rng([cell, 7])
    pool = {}
    for label, count in GLYPHS_PER_CELL.items():
        mnist, fonts = handwriting.glyphs(label, "heldout")
        every = list(mnist) + list(fonts)
        pool[label] = [every[i] for i in rng.choice(len(every), count, replace=False)]
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
    return {"exact": round(r["sequence_accuracy"] * CELL_SIZES["judge"]), "mAP50": round(r["mAP50"], 3),
            "threshold": r["threshold"], "confusions": r["confusions"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cube_detect.tflite")
    parser.add_argument("--cells", type=int, default=12)
    parser.add_argument("--finetune", choices=("failing", "all", "none"), default="failing",
                        help="fine-tune the cells the model misreads zero-shot (default), all, or none")
    parser.add_argument("--workdir", type=Path, default=Path("runs/cell_proxy"))
    args = parser.parse_args()
    rows: List[Dict[str, Any]] = []
    for cell in range(1, args.cells + 1):
        out = write_cell(args.workdir / f"cell{cell}", cell)
        row: Dict[str, Any] = {"cell": cell, "family": cell_family(cell), "zero_shot": judge(args.model, out / "judge")}
        if args.finetune == "all" or (args.finetune == "failing" and row["zero_shot"]["exact"] < CELL_SIZES["judge"]):
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "cube_detect", "train", "--data", str(out / "cell"),
                            "--init", str(args.model), "--out", str(out / "ft"), "--workdir", str(out / "ftrun")],
                           check=True, stdout=subprocess.DEVNULL)
            row["fine_tuned"] = judge(out / "ft.tflite", out / "judge")
            row["fine_tune_wall_s"] = round(time.time() - t0)
        rows.append(row)
        ft = row.get("fine_tuned")
        print(f"cell {cell} ({row['family']}): zero-shot {row['zero_shot']['exact']}/13 "
              f"(mAP@0.5 {row['zero_shot']['mAP50']})"
              + (f", fine-tuned {ft['exact']}/13 (mAP@0.5 {ft['mAP50']}, threshold {ft['threshold']}, "
                 f"{row['fine_tune_wall_s']} s)" if ft else ""), flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = {"model": str(args.model), "cells": rows}
    (args.workdir / "cell_proxy.json").write_text(json.dumps(result, indent=2) + "\n")
    zero = sum(r["zero_shot"]["exact"] == 13 for r in rows)
    tuned = [r for r in rows if "fine_tuned" in r]
    print(f"zero-shot: {zero} of {len(rows)} cells read 13/13; fine-tuned: "
          f"{sum(r['fine_tuned']['exact'] == 13 for r in tuned)} of {len(tuned)} cells read 13/13")
    return 0


if __name__ == "__main__":
    sys.exit(main())
