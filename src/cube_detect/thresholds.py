"""The default score threshold of a model: which candidate, on which images, by which rule.

Export picks it on its validation images or, for a fine-tune, on the user's reviewed test photos;
``evaluate --set-threshold`` picks it on any labelled folder of real photos. The digits are
judged by exact sorted sequences (what the arm gets), other class sets by F1.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

from cube_detect.inference import Detection
from cube_detect.labels import LABELS
from cube_detect.metrics import GroundTruth, detection_f1, sequence_accuracy

#: Thresholds export tries for the model's default: a face scoring below 0.15 is noise, and above
#: 0.8 real faces are lost (real photos score lower than synthetic ones).
THRESHOLD_CANDIDATES = tuple(round(0.15 + 0.05 * i, 2) for i in range(14))


#: A fine-tune's threshold is chosen on the user's own photos when its data sets' test splits
#: hold at least this many reviewed images (labelImg's verified="yes"); else on validation scenes.
MIN_REVIEWED_PHOTOS = 10


def pick_threshold(curve: Dict[str, float], criterion: str = "exact_sequences", real_photos: bool = False,
                   images: int = 0) -> float:
    """The default threshold from a ``{"0.45": score}`` curve measured on ``images`` images.

    For the digits' exact sequences on synthetic validation scenes: from the lowest of the best,
    down through the candidates below it while they stay within one standard error of the best
    (the binomial error of a share measured on ``images`` scenes; 0 images: only the equally
    best), never across a dip. Real photos score lower than synthetic ones (real faces at
    0.3-0.6 where synthetic ones score 0.8+), so where the synthetic curve cannot tell two
    candidates apart, the lower one keeps more real faces (the "one standard error" rule of
    model selection).

    For exact sequences on the user's own photos (``real_photos``): a dozen photos cannot tell
    two candidates one photo apart, so the plateau is every candidate within one photo of the
    best, and the threshold is the middle of the run of neighbouring candidates on that plateau
    that holds a best one (the longest, if several do, and of those the lowest; the lower middle
    of an even run, as real faces score low; with no image count, the equally best only): a
    lone spike one photo above its neighbours does not pull it to an edge where the photos
    after them fall off. For F1 (other class sets): the middle of the equally best."""
    best = max(curve.values())
    ordered = sorted((float(t), v) for t, v in curve.items())
    if criterion == "exact_sequences" and not real_photos:
        error = math.sqrt(best * (1 - best) / images) if images else 0.0
        k = next(i for i, (_, v) in enumerate(ordered) if v >= best - 1e-9)
        while k and ordered[k - 1][1] >= best - error - 1e-9:
            k -= 1
        return ordered[k][0]
    if criterion == "exact_sequences":
        # In photos, not shares: the curve is rounded (14 of 15 is kept as 0.9333, below 1 - 1/15).
        count = (lambda v: round(v * images)) if images else (lambda v: v)
        floor = count(best) - (1 if images else 0)
        runs: List[List[Tuple[float, float]]] = [[]]
        for t, v in ordered:
            if count(v) >= floor:
                runs[-1].append((t, v))
            elif runs[-1]:
                runs.append([])
        # The longest run holding a best candidate; of equally long ones, the lowest.
        run = max((r for r in runs if any(count(v) == count(best) for _, v in r)), key=len)
        return run[(len(run) - 1) // 2][0]
    top = sorted(float(t) for t, v in curve.items() if v >= best - 1e-9)
    return top[len(top) // 2]


def criterion_for(labels: Dict[int, str]) -> str:
    """The digits stand in a row for the arm: the sorted sequence is what counts. Other class sets
    (a tic-tac-toe board, hands) are judged by F1."""
    return "exact_sequences" if labels == LABELS else "f1"


def choose_threshold(truth: Sequence[GroundTruth], found: Sequence[Sequence[Detection]],
                     criterion: str = "exact_sequences", real_photos: bool = False) -> Tuple[float, Dict[str, float]]:
    """The default threshold (:func:`pick_threshold`) from the share of exact sorted label
    sequences on the validation images (every scene family) at each candidate, or from F1
    (``criterion="f1"``: other class sets, whose objects need not stand in a row). Returns it
    and the curve."""
    score = sequence_accuracy if criterion == "exact_sequences" else detection_f1
    curve = {f"{t:.2f}": round(score(truth, found, t), 4) for t in THRESHOLD_CANDIDATES}
    return pick_threshold(curve, criterion, real_photos, len(truth)), curve
