"""Images in: sensor_msgs/Image -> BGR numpy array (without rospy or cv_bridge), and image files.

The robot's camera service answers ``CvBridge().cv2_to_imgmsg(frame)`` with no encoding, so
its images say ``8UC3`` (pixels are BGR, as OpenCV captured them); a grayscale camera says
``8UC1``; other cameras in the field publish ``bgr8``, ``rgb8``, ``mono8``, ``bgra8`` or
``rgba8``. Everything here works on any object with the message's fields (``height``,
``width``, ``encoding``, ``step``, ``data``), so it is tested without ROS.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Tuple

import cv2
import numpy as np

from cube_detect.errors import ImageError

EMPTY_IMAGE_MESSAGE = "camera returned an empty image (is the camera enabled?)"

# encoding -> (channels, conversion of the HxWxC pixels to HxWx3 BGR)
_CONVERSIONS: Dict[str, Tuple[int, Callable[[np.ndarray], np.ndarray]]] = {
    "8UC3": (3, lambda px: px),  # cv_bridge's default for an OpenCV frame: BGR
    "bgr8": (3, lambda px: px),
    "rgb8": (3, lambda px: px[:, :, ::-1]),
    "bgra8": (4, lambda px: px[:, :, :3]),
    "rgba8": (4, lambda px: px[:, :, 2::-1]),
    "mono8": (1, lambda px: np.repeat(px, 3, axis=2)),
    "8UC1": (1, lambda px: np.repeat(px, 3, axis=2)),
}

#: Encodings :func:`imgmsg_to_bgr` accepts.
SUPPORTED_ENCODINGS = tuple(_CONVERSIONS)


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
    if encoding not in _CONVERSIONS:
        raise ImageError(
            f"image encoding {encoding!r} is not supported (supported: {', '.join(SUPPORTED_ENCODINGS)})"
        )
    channels, convert = _CONVERSIONS[encoding]
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


def read_image(path: os.PathLike) -> Optional[np.ndarray]:
    """An image file as an 8-bit gray, BGR or BGRA array; None when OpenCV cannot read it
    (missing, truncated, not an image) or it is not 8-bit (e.g. a 16-bit PNG)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8 or image.size == 0:
        return None
    return image
