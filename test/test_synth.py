"""Synthetic scenes: determinism, box sanity, data-set layout (no ROS, no TF)."""

import cv2
import numpy as np
import pytest

from cube_detect import cli, synth
from cube_detect.dataset import load_split, split_for
from cube_detect.labels import LABELS, read_label_map
from cube_detect.synth import geometry
from cube_detect.voc import LabeledBox, read_voc

BATCH_SEED = 11
BATCH = 48


@pytest.fixture(scope="module")
def batch():
    return [synth.render_indexed(BATCH_SEED, i, family="topdown") for i in range(BATCH)]  # the dim top-down cells


def test_same_seed_and_index_same_scene_other_seed_differs():
    image, boxes = synth.render_indexed(3, 7)
    again, boxes_again = synth.render_scene(np.random.default_rng([3, 7]))
    assert np.array_equal(image, again) and boxes == boxes_again
    other, other_boxes = synth.render_indexed(4, 7)
    assert image.shape != other.shape or not np.array_equal(image, other)
    neighbour, _ = synth.render_indexed(3, 8)
    assert image.shape != neighbour.shape or not np.array_equal(image, neighbour)


def test_size_argument():
    for size in synth.SIZES:
        image, boxes = synth.render_scene(np.random.default_rng(1), size=size)
        assert image.shape == (size[1], size[0], 3) and image.dtype == np.uint8
        assert all(b.xmax <= size[0] and b.ymax <= size[1] for b in boxes)


def test_boxes_inside_image_non_degenerate_and_counted(batch):
    counts, labels, shapes = [], set(), set()
    for image, boxes in batch:
        height, width = image.shape[:2]
        shapes.add((width, height))
        counts.append(len(boxes))
        for b in boxes:
            assert isinstance(b, LabeledBox) and b.label in LABELS.values()
            assert 0 <= b.xmin < b.xmax <= width and 0 <= b.ymin < b.ymax <= height
            # a whole face, about 140-210 px wide (the box of a rotated face is wider)
            assert 60 <= b.xmax - b.xmin <= 320 and 60 <= b.ymax - b.ymin <= 320
            labels.add(b.label)
    assert shapes == set(synth.SIZES)
    assert labels == set(LABELS.values())
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) >= 3


def test_box_holds_a_bright_face_with_a_dark_digit(batch):
    for image, boxes in batch:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        background = np.median(gray)
        for b in boxes:
            # the centre of the box is on the face even when the face is turned by 45 degrees
            cx, cy = (b.xmin + b.xmax) / 2, (b.ymin + b.ymax) / 2
            rx, ry = (b.xmax - b.xmin) * 0.2, (b.ymax - b.ymin) * 0.2
            centre = gray[int(cy - ry) : int(cy + ry), int(cx - rx) : int(cx + rx)]
            paper, ink = np.percentile(centre, 90), np.percentile(centre, 2)
            assert paper > background + 20, (b, paper, background)  # the face is brighter than the scene
            assert ink < paper - 30, (b, ink, paper)  # and the digit darker than the face


def test_grayscale_and_colour_cameras_both_occur(batch):
    gray = [np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2]) for im, _ in batch]
    assert any(gray) and not all(gray)


def test_write_dataset_layout_and_read_back(tmp_path):
    out = tmp_path / "synthetic"
    summary = synth.write_dataset(out, count=10, seed=21, test_share=0.2, progress=False)
    # The root files and the split rule of every data set this package writes (DatasetWriter).
    assert sorted(p.name for p in out.iterdir()) == ["classes.txt", "label_map.pbtxt", "test", "train"]
    assert read_label_map(out / "label_map.pbtxt") == LABELS
    assert (out / "classes.txt").read_text().split() == list(LABELS.values())
    train, test = load_split(out / "train"), load_split(out / "test")
    assert len(train) + len(test) == 10
    assert summary.images == {"train": len(train), "test": len(test)}
    assert sum(summary.faces.values()) == sum(len(s.annotation.boxes) for s in train + test)
    for sample in train + test:
        number = int(sample.image_path.stem.replace("image", ""))
        assert sample.image_path.name == f"image{number:03d}.png"
        assert sample.image_path.parent.name == split_for(number, 0.2)
        image, boxes = synth.render_indexed(21, number - 1)  # scene i is image number i + 1
        assert sample.annotation.boxes == boxes
        assert sample.annotation.filename == sample.image_path.name
        assert sample.annotation.folder == sample.image_path.parent.name
        assert (sample.annotation.width, sample.annotation.height) == (image.shape[1], image.shape[0])
    first = train[0]
    first_image, _ = synth.render_indexed(21, int(first.image_path.stem[5:]) - 1)
    assert np.array_equal(cv2.imread(str(first.image_path)), first_image)
    assert not list(out.rglob(".*"))  # no temporary files left


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "ds"
    assert cli.main(["synth", "--out", str(out), "--count", "3", "--seed", "4", "--test-share", "0.34"]) == 0
    splits = [split_for(n, 0.34) for n in (1, 2, 3)]
    assert f"saved 3 images (train {splits.count('train')}, test {splits.count('test')})" in capsys.readouterr().out
    for number, split in zip((1, 2, 3), splits):
        assert read_voc(out / split / f"image{number:03d}.xml").boxes == synth.render_indexed(4, number - 1)[1]
    assert cli.main(["synth", "--out", str(out), "--count", "3", "--test-share", "1.5"]) == 2


def test_layout_faces_never_overlap_and_are_in_frame():
    for i in range(150):
        rng = np.random.default_rng([77, i])
        width, height = synth.SIZES[i % 2]
        cubes = geometry._layout(rng, width, height, width * 1.2, (rng.normal(0, 0.2), rng.normal(0, 0.14)))
        assert 1 <= sum(c.label is not None for c in cubes) <= 4 and len(cubes) <= 4
        for c in cubes:
            assert geometry._visible_fraction(c.front, width, height) >= synth.MIN_VISIBLE
        for a in range(len(cubes)):
            for b in range(a + 1, len(cubes)):
                area, _ = cv2.intersectConvexConvex(cubes[a].hull.astype(np.float32), cubes[b].hull.astype(np.float32))
                assert area == 0, (i, a, b)
