"""Command ``python -m cube_detect stats DATASET [--skip-bad]``: checks a data set and counts
images and faces per split and class, and the faces marked ``difficult`` (VOC's flag: counted in
their class too, but neither found nor missed in evaluation and not trained on). The review page
shows the same table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple

from cube_detect.dataset import SPLITS, LabeledImage, check_split, images_root, resolve_labels
from cube_detect.labels import LABELS_HELP, describe

#: The column of the faces marked difficult (of the faces, of their classes).
DIFFICULT = "difficult"


def count_split(samples: List[LabeledImage], labels: Dict[int, str]) -> dict:
    counts = {"images": len(samples), "faces": 0}
    counts.update(dict.fromkeys(labels.values(), 0))
    counts[DIFFICULT] = 0
    for sample in samples:
        for box in sample.annotation.boxes:
            counts["faces"] += 1
            counts[box.label] = counts.get(box.label, 0) + 1
            counts[DIFFICULT] += bool(box.difficult)
    return counts


def format_stats(rows: List[Tuple[str, dict]], labels: Dict[int, str]) -> str:
    columns = ["images", "faces"] + [name for _, name in sorted(labels.items())] + [DIFFICULT]
    table = [["split"] + columns] + [[name] + [str(counts.get(c, 0)) for c in columns] for name, counts in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="directory with train/ and test/ (labelImg VOC)")
    parser.add_argument("--skip-bad", action="store_true", help="warn about bad files and count the others")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help=LABELS_HELP)


def run(args: argparse.Namespace) -> int:
    root = images_root(Path(args.dataset))
    rows, skipped = [], 0
    total: Dict[str, int] = {}
    splits = [s for s in SPLITS if (root / s).is_dir()]
    labels = resolve_labels([Path(args.dataset)], args.labels)
    print(f"classes: {describe(labels)}")
    for split in splits:
        samples, bad = check_split(root / split, args.skip_bad, labels.values())
        skipped += len(bad)
        counts = count_split(samples, labels)
        rows.append((split, counts))
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    rows.append(("total", total))
    print(format_stats(rows, labels))
    if skipped:
        print(f"skipped {skipped} bad file(s)")
    return 0
