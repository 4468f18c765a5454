"""images.imgmsg_to_bgr: channel order per encoding, row padding, and the errors."""

from types import SimpleNamespace

import numpy as np
import pytest

from cube_detect.errors import ImageError
from cube_detect.images import (
    EMPTY_IMAGE_MESSAGE,
    ENCODINGS,
    ROBOT_ENCODING,
    SUPPORTED_ENCODINGS,
    imgmsg_to_bgr,
)

# A 2x3 BGR image whose pixels are distinguishable in every channel order.
BLUE, GREEN, RED = (255, 0, 0), (0, 255, 0), (0, 0, 255)
BGR = np.array(
    [[BLUE, GREEN, RED],
     [(10, 20, 30), (200, 100, 50), (7, 7, 7)]],
    dtype=np.uint8,
)


def msg(pixels: np.ndarray, encoding: str, pad: int = 0, as_list: bool = False):
    """A sensor_msgs/Image-like object holding ``pixels`` (HxWxC) with ``pad`` bytes per row."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    if pad:
        rows = np.hstack([rows, np.full((height, pad), 0xEE, np.uint8)])
    data = rows.tobytes()
    return SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=0,
                           step=rows.shape[1], data=list(data) if as_list else data)


def gray_of(bgr):
    # Any gray value works: only "three equal channels, same values" is checked.
    return (bgr.astype(np.uint16).sum(axis=2) // 3).astype(np.uint8)


@pytest.mark.parametrize("encoding,pixels", [
    ("8UC3", BGR),
    ("bgr8", BGR),
    ("rgb8", BGR[:, :, ::-1]),
    ("bgra8", np.dstack([BGR, np.full(BGR.shape[:2], 128, np.uint8)])),
    ("rgba8", np.dstack([BGR[:, :, ::-1], np.full(BGR.shape[:2], 128, np.uint8)])),
])
def test_colour_encodings_give_bgr(encoding, pixels):
    out = imgmsg_to_bgr(msg(np.ascontiguousarray(pixels), encoding))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, BGR)
    assert tuple(out[0, 0]) == BLUE and tuple(out[0, 2]) == RED  # channel order, spelled out


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_gray_encodings_give_three_equal_channels(encoding):
    gray = gray_of(BGR)
    out = imgmsg_to_bgr(msg(gray[:, :, None], encoding))
    assert out.shape == (2, 3, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_row_padding_is_skipped(encoding):
    unpadded = _pixels_for(encoding)
    expected = imgmsg_to_bgr(msg(unpadded, encoding))
    padded = imgmsg_to_bgr(msg(unpadded, encoding, pad=5))
    np.testing.assert_array_equal(padded, expected)


def _pixels_for(encoding):
    channels = ENCODINGS[encoding].channels
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (4, 5, channels), dtype=np.uint8)


def test_data_as_list_of_ints_and_output_is_a_writable_copy():
    source = msg(BGR, "bgr8", as_list=True)
    out = imgmsg_to_bgr(source)
    np.testing.assert_array_equal(out, BGR)
    out[0, 0] = 0  # must not raise (rospy's bytes are read-only)
    assert out.flags.c_contiguous
    frozen = msg(BGR, "bgr8")
    out2 = imgmsg_to_bgr(frozen)
    out2[:] = 0
    np.testing.assert_array_equal(imgmsg_to_bgr(frozen), BGR)


@pytest.mark.parametrize("height,width", [(0, 0), (0, 640), (480, 0)])
def test_empty_image_says_camera_disabled(height, width):
    empty = SimpleNamespace(height=height, width=width, encoding="", step=0, data=b"", is_bigendian=0)
    with pytest.raises(ImageError, match=r"empty image \(is the camera enabled\?\)"):
        imgmsg_to_bgr(empty)
    assert EMPTY_IMAGE_MESSAGE == "camera returned an empty image (is the camera enabled?)"


def test_unknown_encoding_is_named():
    bad = msg(BGR, "16UC1")
    with pytest.raises(ImageError, match=r"'16UC1' is not supported.*8UC3"):
        imgmsg_to_bgr(bad)


def test_data_size_mismatch():
    short = msg(BGR, "bgr8")
    short.data = short.data[:-1]
    with pytest.raises(ImageError, match=r"expected 18 bytes of data, got 17"):
        imgmsg_to_bgr(short)


def test_step_smaller_than_a_row():
    bad = msg(BGR, "bgr8")
    bad.step = 8
    with pytest.raises(ImageError, match=r"step 8 is smaller than a row \(9 bytes\)"):
        imgmsg_to_bgr(bad)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_agrees_with_cv_bridge(encoding):
    """Same pixels as cv_bridge + cvtColor on real sensor_msgs/Image messages (skipped without ROS)."""
    cv_bridge = pytest.importorskip("cv_bridge")
    cv2 = pytest.importorskip("cv2")
    from cube_detect.simulation import encode_for_camera

    rng = np.random.default_rng(3)
    scene = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    pixels = encode_for_camera(scene, encoding)
    bridge = cv_bridge.CvBridge()
    real = bridge.cv2_to_imgmsg(pixels) if encoding == ROBOT_ENCODING else bridge.cv2_to_imgmsg(pixels, encoding)
    assert real.encoding == encoding
    out = imgmsg_to_bgr(real)
    if ENCODINGS[encoding].channels == 1:
        np.testing.assert_array_equal(out, cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR))
    else:
        np.testing.assert_array_equal(out, scene)


