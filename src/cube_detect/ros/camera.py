"""The camera client of the detector and the capture node: ``/get_image`` with a timeout.

The robot's camera service is poppy_controllers/GetImage (ours, srv/GetImage.srv, has the same
md5sum). rospy's service calls have no timeout, so each call runs in a daemon thread and the
caller stops waiting after ``timeout`` s: a camera that hangs costs one cycle, not the node.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict

import rospy

from cube_detect.protocol import CameraError
from cube_detect.ros.settings import CAMERA_TIMEOUT_S
from cube_detect.srv import GetImage


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (rospy's are long), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CameraClient:
    """``fetch()`` the camera's sensor_msgs/Image, or CameraError saying why not."""

    def __init__(self, service: str = "/get_image", timeout: float = CAMERA_TIMEOUT_S,
                 is_shutdown: Callable[[], bool] = rospy.is_shutdown):
        self.service, self.timeout, self.is_shutdown = service, float(timeout), is_shutdown

    def fetch(self) -> Any:
        """The image; CameraError when the service is missing, fails or does not answer in time."""
        outcome: Dict[str, Any] = {}

        def call() -> None:
            try:  # a proxy per call: it finds a restarted camera again
                outcome["image"] = rospy.ServiceProxy(self.service, GetImage)().image
            except Exception as exc:  # noqa: BLE001 - reported to the caller below
                outcome["error"] = exc

        worker = threading.Thread(target=call, name="get_image", daemon=True)
        worker.start()
        deadline = time.monotonic() + self.timeout
        while worker.is_alive() and time.monotonic() < deadline and not self.is_shutdown():
            worker.join(0.05)
        if worker.is_alive() and self.is_shutdown():
            raise CameraError("shutting down")
        if worker.is_alive():
            raise CameraError(f"camera service {self.service}: no answer within {self.timeout:g} s")
        if "error" in outcome:
            raise CameraError(f"camera service {self.service}: {first_line(outcome['error'])}")
        return outcome["image"]
