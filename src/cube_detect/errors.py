"""Error types. Every message names the thing that is wrong (file, line, parameter)."""


class CubeDetectError(Exception):
    """Base of the errors the CLI reports as one line (``error: <message>``) and exit 2."""


class DatasetError(CubeDetectError):
    """A data-set file that cannot be used: malformed XML, box outside the image, ..."""


class ModelError(CubeDetectError):
    """A model that cannot be loaded: missing, corrupt, label-count mismatch, bad sidecar."""


class ImageError(CubeDetectError):
    """An image that cannot be decoded: empty, unknown encoding, wrong data size."""


class CameraError(CubeDetectError):
    """No image could be had: camera service missing, failing or too slow."""
