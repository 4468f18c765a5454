"""Worker pools stay safe with pip's OpenCV (opencv-python-headless deadlocks in a forked child
once the parent has used OpenCV): they spawn. Runs in the main venv and in `make py38`'s venv,
which has pip's OpenCV."""

import cv2
import numpy as np

from cube_detect import synth
from cube_detect.dataset import load_split
from cube_detect.modelspec import ModelSpec
from cube_detect.samples import synthetic_samples


def test_render_workers_after_opencv_use_give_the_same_samples_as_one_process(tmp_path):
    cv2.GaussianBlur(np.zeros((64, 64), np.float32), (5, 5), 0)  # OpenCV used before the pool starts
    spec = ModelSpec()
    pooled = synthetic_samples(3, 60, spec, workers=2, desc="pool")
    single = synthetic_samples(3, 60, spec, workers=1, desc="one")
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(pooled, single))


def test_synth_workers_write_the_same_files(tmp_path):
    cv2.resize(np.zeros((8, 8), np.uint8), (4, 4))
    synth.write_dataset(tmp_path / "one", count=4, seed=2, test_share=0.25, workers=1, progress=False)
    synth.write_dataset(tmp_path / "two", count=4, seed=2, test_share=0.25, workers=2, progress=False)
    for split in ("train", "test"):
        a, b = load_split(tmp_path / "one" / split), load_split(tmp_path / "two" / split)
        assert [s.image_path.name for s in a] == [s.image_path.name for s in b]
        assert [s.annotation.boxes for s in a] == [s.annotation.boxes for s in b]
        assert all(sa.image_path.read_bytes() == sb.image_path.read_bytes() for sa, sb in zip(a, b))
