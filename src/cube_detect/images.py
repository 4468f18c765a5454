"""Images in: sensor_msgs/Image -> BGR numpy array (without rospy or cv_bridge), and image files.

The robot's camera service answers ``CvBridge().cv2_to_imgmsg(frame)`` with no encoding, so
its images say ``8UC3`` (pixels are BGR, as OpenCV captured them: ``ROBOT_ENCODING``); a
grayscale camera says ``8UC1``; other cameras in the field publish the other encodings of
``ENCODINGS``, the one table of the camera encodings we read (the detector, the capture node,
the doctor, the simulated camera and the tests take them from it). Everything here works on any
object with the message's fields (``height``, ``width``, ``encoding``, ``step``, ``data``), so
it is tested without ROS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import cv2
import numpy as np

from cube_detect.errors import ImageError

EMPTY_IMAGE_MESSAGE = "camera returned an empty image (is the camera enabled?)"



@dataclass(frozen=True)
class Encoding:
    """A camera encoding we read: its channels (bytes per pixel), how its HxWxC pixels become
    HxWx3 BGR, and the ``cv2.cvtColor`` code a camera makes them with from BGR (None: BGR as is;
    what the simulated camera serves)."""

    channels: int
    to_bgr: Callable[[np.ndarray], np.ndarray]
    from_bgr: Optional[int]


def _gray_to_bgr(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels, 3, axis=2)


#: What the robot's camera service sends (poppy_controllers: ``cv2_to_imgmsg`` without an
#: encoding, cv_bridge's default for an OpenCV frame: BGR).
ROBOT_ENCODING = "8UC3"
#: The camera encodings :func:`imgmsg_to_bgr` reads, by their sensor_msgs/Image name.
ENCODINGS: Dict[str, Encoding] = {
    ROBOT_ENCODING: Encoding(3, lambda px: px, None),
    "bgr8": Encoding(3, lambda px: px, None),
    "rgb8": Encoding(3, lambda px: px[:, :, ::-1], cv2.COLOR_BGR2RGB),
    "bgra8": Encoding(4, lambda px: px[:, :, :3], cv2.COLOR_BGR2BGRA),
    "rgba8": Encoding(4, lambda px: px[:, :, 2::-1], cv2.COLOR_BGR2RGBA),
    "mono8": Encoding(1, _gray_to_bgr, cv2.COLOR_BGR2GRAY),
    "8UC1": Encoding(1, _gray_to_bgr, cv2.COLOR_BGR2GRAY),
}
#: Their names, in the table's order.
SUPPORTED_ENCODINGS = tuple(ENCODINGS)
#: A 16-bit camera's encoding, which the nodes cannot read: the simulated camera serves it for
#: the doctor's test of an unreadable camera.
UNREADABLE_ENCODING = "mono16"


def _as_bytes(data) -> np.ndarray:
    """The message's ``data`` (bytes from rospy, or a list of ints) as a flat uint8 array."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def imgmsg_to_bgr(msg) -> np.ndarray:
    """A C-contiguous HxWx3 BGR uint8 copy of ``msg`` (gray images get three equal channels).

    Honours ``step`` (rows may be padded). Raises :class:`ImageError` for an empty image (what
    the robot answers when its camera is disabled), an unsupported encoding, or data whose size
    does not match ``height`` x ``step``.
    """
    height, width = int(msg.height), int(msg.width)
    if height == 0 or width == 0:
        raise ImageError(EMPTY_IMAGE_MESSAGE)
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS:
        raise ImageError(
            f"image encoding {encoding!r} is not supported (supported: {', '.join(SUPPORTED_ENCODINGS)})"
        )
    channels, convert = ENCODINGS[encoding].channels, ENCODINGS[encoding].to_bgr
    row_bytes = width * channels
    step = int(msg.step)
    if step < row_bytes:
        raise ImageError(
            f"{encoding} image {width}x{height}: step {step} is smaller than a row ({row_bytes} bytes)"
        )
    data = _as_bytes(msg.data)
    if data.size != step * height:
        raise ImageError(
            f"{encoding} image {width}x{height} with step {step}: expected {step * height} bytes "
            f"of data, got {data.size}"
        )
    pixels = data.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    # Always a writable copy: the message's bytes are read-only and may be reused by rospy.
    return np.array(convert(pixels), dtype=np.uint8, order="C", copy=True)


def median_colour(image: np.ndarray) -> np.ndarray:
    """Per-channel median of an H x W (gray: one value) or H x W x C image, as floats: the colour a
    scene is padded with when it is shown smaller (training's far zoom-out, ``robustness --zoom-out``)."""
    return np.median(image.reshape(image.shape[0] * image.shape[1], -1), axis=0)


def read_image(path: os.PathLike) -> Optional[np.ndarray]:
    """An image file as an 8-bit gray, BGR or BGRA array; None when OpenCV cannot read it
    (missing, truncated, not an image) or it is not 8-bit (e.g. a 16-bit PNG)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8 or image.size == 0:
        return None
    return image
