"""boxes.py: the one box type and the arm's order rule."""

import pytest

from cube_detect.boxes import BBox, row_axis, sort_left_to_right


def test_bbox_size_centre_scale_clip():
    box = BBox(10, 20, 50, 100)
    assert (box.width, box.height, box.area) == (40, 80, 3200)
    assert box.center() == (30, 60)
    assert box.scale(0.25) == BBox(2.5, 5, 12.5, 25)
    assert BBox(-5, -1, 700, 300).clip(640, 480) == BBox(0, 0, 640, 300)
    assert BBox(700, 10, 800, 20).clip(640, 480).area == 0  # wholly outside: nothing left


def test_iou_of_identical_disjoint_and_partial_boxes():
    a = BBox(0, 0, 100, 100)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou((200, 0, 300, 100)) == 0.0
    assert a.iou(BBox(25, 0, 125, 100)) == pytest.approx(75 / 125)


def test_row_axis_and_arm_order():
    row = [BBox(300, 0, 400, 100), BBox(0, 10, 100, 110)]
    column = [BBox(0, 300, 100, 400), BBox(10, 0, 110, 100)]
    assert row_axis(row) == "x" and row_axis(column) == "y" and row_axis(row[:1]) == "x"
    assert sort_left_to_right(row, box=lambda b: b) == [row[1], row[0]]
    assert sort_left_to_right(column, "y", box=lambda b: b) == [column[1], column[0]]
    with pytest.raises(ValueError):
        sort_left_to_right(row, "z", box=lambda b: b)
