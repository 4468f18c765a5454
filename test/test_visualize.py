"""Annotated images."""

from types import SimpleNamespace

import numpy as np

from cube_detect.visualize import CLASS_COLOURS, TRUTH_COLOUR, draw_detections


def test_draw_detections_draws_boxes_in_class_colours_on_a_copy():
    image = np.zeros((480, 640, 3), np.uint8)
    dets = [SimpleNamespace(label="two", class_id=2, score=0.97, box=(100.0, 200.0, 260.0, 360.0)),
            SimpleNamespace(label="one", class_id=1, score=0.81, box=(400.4, 0.0, 560.0, 150.0))]
    out = draw_detections(image, dets)
    assert not image.any()  # the input is untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    assert tuple(out[280, 100]) == CLASS_COLOURS[2]  # left edge of the first box
    assert tuple(out[100, 560]) == CLASS_COLOURS[1]  # right edge of the second box
    assert not out[300:340, 150:220].any()  # box interiors are not filled
    assert draw_detections(image, []).tobytes() == image.tobytes()


def test_gray_images_and_truth_boxes_are_drawn_in_colour():
    gray = np.zeros((120, 160), np.uint8)
    out = draw_detections(gray, [], truth=[("one", (10, 10, 50, 50))])
    assert out.shape == (120, 160, 3)
    assert tuple(out[30, 10]) == TRUTH_COLOUR


def test_a_difficult_truth_box_is_dashed():
    gray = np.zeros((120, 160), np.uint8)
    solid = draw_detections(gray, [], truth=[("one", (10, 10, 109, 60))])
    dashed = draw_detections(gray, [], truth=[("one", (10, 10, 109, 60), True)])
    edge_solid, edge_dashed = (np.all(img[10, 10:110] == TRUTH_COLOUR, axis=-1) for img in (solid, dashed))
    assert edge_solid.all()
    assert 0.4 <= edge_dashed.mean() <= 0.6  # dashes and gaps of 6 px along the top edge
    assert tuple(dashed[10, 10]) == TRUTH_COLOUR and not dashed[10, 16:22].any()  # a dash, then a gap
    assert (draw_detections(gray, [], truth=[("one", (10, 10, 109, 60), False)]) == solid).all()
