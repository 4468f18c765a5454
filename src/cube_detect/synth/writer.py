"""``python -m cube_detect synth``: render scenes of a seed (in worker processes) and save them
as a labelImg data set through :class:`~cube_detect.dataset_writer.DatasetWriter`."""

from __future__ import annotations

import argparse
import multiprocessing
import os
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from cube_detect.dataset_writer import DatasetWriter, SaveSummary
from cube_detect.errors import CubeDetectError
from cube_detect.synth.families import EVALUATION_FAMILIES, HELDOUT_FAMILY, render_indexed
from cube_detect.synth.handwriting import check_data
from cube_detect.voc import LabeledBox


def _render_task(task: Tuple[int, int, Optional[str]]) -> Tuple[np.ndarray, List[LabeledBox]]:
    seed, index, family = task
    return render_indexed(seed, index, family=family)


def init_worker() -> None:
    """Pool initializer for rendering processes: one OpenCV thread each (no oversubscription)."""
    cv2.setNumThreads(1)


def write_dataset(out_dir: os.PathLike, count: int, seed: int, test_share: float = 0.1, workers: int = 1,
                  progress: bool = True, family: Optional[str] = None) -> SaveSummary:
    """Render scenes ``0 .. count-1`` of ``seed`` (of ``family``, default the mixture; in
    ``workers`` processes) and save them with :class:`~cube_detect.dataset_writer.DatasetWriter`, the
    writer capture uses: same names, split rule and root files. Scene ``i`` of a new data set
    is ``imageNNN`` with NNN = i + 1."""
    if count < 0:
        raise CubeDetectError(f"--count must be >= 0, got {count}")
    if not 0.0 <= test_share < 1.0:
        raise CubeDetectError(f"--test-share must be in [0, 1), got {test_share}")
    if family is not None and family not in EVALUATION_FAMILIES:
        raise CubeDetectError(f"--family {family}: not one of {', '.join(EVALUATION_FAMILIES)}")
    if family == HELDOUT_FAMILY:
        check_data()  # one clear line now, not one per rendering worker
    writer = DatasetWriter(out_dir, test_share)
    tasks = [(seed, i, family) for i in range(count)]
    with tqdm(total=count, desc="synth", unit="img", disable=not progress) as bar:
        if workers <= 1:
            scenes: Iterable[Tuple[np.ndarray, List[LabeledBox]]] = map(_render_task, tasks)
            for image, boxes in scenes:
                writer.save(image, boxes)
                bar.update(1)
        else:
            # spawn, not fork: pip's OpenCV deadlocks in a forked child once the parent has used it.
            with multiprocessing.get_context("spawn").Pool(workers, initializer=init_worker) as pool:
                for image, boxes in pool.imap(_render_task, tasks, chunksize=4):
                    writer.save(image, boxes)
                    bar.update(1)
    return writer.summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output data set directory (train/, test/, label files)")
    parser.add_argument("--count", type=int, required=True, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="image i of seed s is always the same (default 0)")
    parser.add_argument("--test-share", type=float, default=0.1, help="share of images in test/ (default 0.1)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--family", choices=EVALUATION_FAMILIES,
                        help=f"scenes of one family only (default: the training mixture; {HELDOUT_FAMILY}: hands "
                             "training never sees, a stand-in for your photos)")


def run(args: argparse.Namespace) -> int:
    summary = write_dataset(args.out, args.count, args.seed, args.test_share, args.workers, family=args.family)
    print(f"{summary.line('labelled')}; written to {Path(args.out)}")
    return 0
