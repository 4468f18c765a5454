"""Metrics: pycocotools mAP on hand-made cases whose answer is known, confusions, sequences."""

import pytest

from cube_detect.boxes import BBox, row_axis
from cube_detect.inference import Detection
from cube_detect.labels import LABELS
from cube_detect.metrics import confusions, sequence_accuracy, summarize

A, B, C = (0, 0, 100, 100), (200, 0, 300, 100), (400, 0, 500, 100)


def d(class_id, score, box):
    return Detection(LABELS[class_id], class_id, score, BBox(*box))


def test_perfect_detections_score_one_and_misses_lower_recall():
    truth = [[(1, A), (2, B)], [(2, C)]]
    perfect = [[d(1, 0.9, A), d(2, 0.8, B)], [d(2, 0.7, C)]]
    result = summarize(truth, perfect, LABELS)
    assert result["mAP50"] == pytest.approx(1.0)
    assert result["mAP75"] == pytest.approx(1.0)
    assert result["AP50_per_class"] == {"one": pytest.approx(1.0), "two": pytest.approx(1.0)}
    missing = summarize(truth, [[d(1, 0.9, A)], [d(2, 0.7, C)]], LABELS)
    assert missing["AP50_per_class"]["two"] == pytest.approx(0.5, abs=0.02)
    assert missing["mAP50"] < 0.8


def test_a_box_shifted_by_a_third_counts_at_iou_half_but_not_075():
    shifted = (25, 0, 125, 100)  # IoU = 75/125 = 0.6
    result = summarize([[(1, A)]], [[d(1, 0.9, shifted)]], LABELS)
    assert result["mAP50"] == pytest.approx(1.0)
    assert result["mAP75"] == pytest.approx(0.0)


def test_wrong_class_is_a_confusion_and_breaks_the_sequence():
    truth = [[(1, A), (2, B)]]
    found = [[d(2, 0.9, A), d(2, 0.8, B)]]
    assert confusions(truth, found, LABELS) == {"one->two": 1, "two->one": 0}
    assert sequence_accuracy(truth, found) == 0.0
    assert sequence_accuracy(truth, [[d(2, 0.8, B), d(1, 0.9, A)]]) == 1.0  # order of the list is irrelevant


def test_low_scores_are_ignored_in_sequences_and_columns_sort_by_y():
    truth = [[(1, A), (2, B)]]
    assert sequence_accuracy(truth, [[d(1, 0.9, A), d(2, 0.9, B), d(1, 0.2, C)]]) == 1.0
    column = [[(2, (0, 300, 100, 400)), (1, (10, 0, 110, 100))]]
    assert row_axis([b for _, b in column[0]]) == "y"
    assert sequence_accuracy(column, [[d(1, 0.9, (12, 2, 110, 100)), d(2, 0.9, (0, 300, 98, 400))]]) == 1.0


def test_no_ground_truth_gives_zero_map_not_a_crash():
    result = summarize([[]], [[d(1, 0.9, A)]], LABELS)
    assert result["mAP50"] == 0.0


def test_detection_f1_counts_matches_of_the_same_class_above_the_threshold():
    from cube_detect.metrics import detection_f1

    truth = [[(1, A), (2, B)], [(2, C)]]
    assert detection_f1(truth, [[d(1, 0.9, A), d(2, 0.8, B)], [d(2, 0.7, C)]]) == pytest.approx(1.0)
    # a wrong class is a false positive and a miss; a low score is only a miss
    assert detection_f1(truth, [[d(2, 0.9, A), d(2, 0.8, B)], [d(2, 0.3, C)]]) == pytest.approx(2 / (2 + 1 + 2))
    assert detection_f1(truth, [[d(1, 0.9, A), d(1, 0.95, A), d(2, 0.8, B)], [d(2, 0.7, C)]]) == pytest.approx(6 / 7)
