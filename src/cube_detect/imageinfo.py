"""An image file's size and depth from its PNG or JPEG header, without decoding the pixels.

Used where a data set's ``<size>`` is checked against its images (:mod:`cube_detect.dataset`)
and where the review page writes a new annotation's ``<size>`` and ``<depth>``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Optional, Tuple

import cv2

from cube_detect.errors import DatasetError

#: How far into a JPEG the header reader looks for its frame header (SOF) before giving up:
#: EXIF and ICC segments come first, and are skipped by their lengths, not read.
_JPEG_SCAN_LIMIT = 16 << 20


def _png_header(head: bytes) -> Optional[Tuple[int, int, int]]:
    """(width, height, depth) from a PNG's IHDR: depth 1 for colour type 0 (grayscale), else 3."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 26:
        width, height = struct.unpack(">II", head[16:24])
        return width, height, 1 if head[25] == 0 else 3
    return None


def _jpeg_header(handle) -> Optional[Tuple[int, int, int]]:
    """(width, height, depth) from a JPEG's frame header (SOFn): depth 1 for one component, else 3.
    Reads markers only, skipping segments by their lengths; gives up past _JPEG_SCAN_LIMIT."""
    handle.seek(2)
    while handle.tell() < _JPEG_SCAN_LIMIT:
        byte = handle.read(1)
        while byte and byte != b"\xff" and handle.tell() < _JPEG_SCAN_LIMIT:
            byte = handle.read(1)
        while byte == b"\xff":
            byte = handle.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack(">H", length_bytes)[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            data = handle.read(6)
            if len(data) < 6:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return width, height, 1 if data[5] == 1 else 3
        handle.seek(length - 2, os.SEEK_CUR)
    return None


def _read_header(image_path: Path) -> Optional[Tuple[int, int, int]]:
    """The PNG or JPEG header's (width, height, depth), None when it has none; OSError if unreadable."""
    # O_NONBLOCK: a FIFO that carries an image's name answers at once instead of blocking.
    fd = os.open(image_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        head = handle.read(32)
        header = _png_header(head)
        if header is None and head[:2] == b"\xff\xd8":
            header = _jpeg_header(handle)
    return header


def image_header(image_path: os.PathLike) -> Tuple[int, int, int]:
    """(width, height, depth) of a PNG or JPEG from its header alone, never decoding the pixels
    (cheap for any image size). Depth as labelImg writes it: 1 for a grayscale image, else 3.
    Raises DatasetError when the file cannot be read or has no PNG or JPEG header with a size."""
    image_path = Path(image_path)
    try:
        header = _read_header(image_path)
    except OSError as exc:
        raise DatasetError(f"{image_path}: cannot read image: {exc.strerror or exc}") from None
    if header is None or header[0] <= 0 or header[1] <= 0:
        raise DatasetError(f"{image_path}: no PNG or JPEG header with the image's size")
    return int(header[0]), int(header[1]), int(header[2])


def image_size(image_path: os.PathLike) -> Tuple[int, int]:
    """(width, height) of a PNG or JPEG from its header; decodes with OpenCV only as a fallback."""
    image_path = Path(image_path)
    try:
        header = _read_header(image_path)
    except OSError as exc:
        raise DatasetError(f"{image_path}: cannot read image: {exc}") from None
    if header is not None and header[0] > 0 and header[1] > 0:
        return int(header[0]), int(header[1])
    image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DatasetError(f"{image_path}: not a readable image")
    return image.shape[1], image.shape[0]
