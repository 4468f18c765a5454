"""The camera clients of the detector and the capture node: a service, or an image topic.

``CameraClient``: the robot's camera service, poppy_controllers/GetImage (ours,
srv/GetImage.srv, has the same md5sum). rospy's service calls have no timeout, so each call
runs in a daemon thread and the caller stops waiting after ``timeout`` s: a camera that hangs
costs one cycle, not the node.

``TopicCamera``: cells whose camera publishes sensor_msgs/Image on a topic (usb_cam's
``/usb_cam/image_raw``): the newest frame, if it arrived less than ``max_age`` s ago; else it
waits up to ``timeout`` s for one. A stale frame is never used.

Both: ``fetch()`` -> sensor_msgs/Image, or CameraError saying why not; ``source`` names it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional, Union

import rospy
from sensor_msgs.msg import Image

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
        self.source = f"camera service {service}"

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


class TopicCamera:
    """``fetch()`` the newest frame of an image topic, if fresh enough, or CameraError."""

    def __init__(self, topic: str, max_age: float = 0.5, timeout: float = CAMERA_TIMEOUT_S,
                 is_shutdown: Callable[[], bool] = rospy.is_shutdown,
                 clock: Callable[[], float] = time.monotonic):
        if max_age <= 0:
            raise ValueError(f"image_max_age must be > 0 s, got {max_age:g}")
        self.max_age, self.timeout, self.is_shutdown, self.clock = float(max_age), float(timeout), is_shutdown, clock
        self.cond = threading.Condition()
        self.latest: Optional[Any] = None
        self.received: Optional[float] = None  # self.clock() when the newest frame arrived
        self.frames = 0
        # buff_size: rospy's default (64 KiB) queues big images behind each other (stale frames).
        self.subscriber = rospy.Subscriber(topic, Image, self.on_image, queue_size=1, buff_size=2 ** 24)
        self.topic = self.subscriber.resolved_name
        self.source = f"image topic {self.topic} (frames less than {self.max_age:g} s old)"

    def on_image(self, msg: Any) -> None:
        with self.cond:
            self.latest, self.received = msg, self.clock()
            self.frames += 1
            self.cond.notify_all()

    def _fresh(self) -> Optional[Any]:
        if self.latest is not None and self.received is not None and self.clock() - self.received <= self.max_age:
            return self.latest
        return None

    def fetch(self) -> Any:
        """The newest frame if it arrived less than ``max_age`` s ago, else the next one within
        ``timeout`` s; CameraError otherwise (naming the topic and the newest frame's age)."""
        deadline = self.clock() + self.timeout
        with self.cond:
            while True:
                frame = self._fresh()
                if frame is not None:
                    return frame
                if self.is_shutdown():
                    raise CameraError("shutting down")
                left = deadline - self.clock()
                if left <= 0:
                    break
                self.cond.wait(min(0.05, left))
            if self.received is None:
                raise CameraError(f"image topic {self.topic}: no frame received within {self.timeout:g} s "
                                  f"({self.subscriber.get_num_connections()} publisher(s) connected)")
            age = self.clock() - self.received
            raise CameraError(f"image topic {self.topic}: no frame newer than {self.max_age:g} s "
                              f"(the newest is {age:.1f} s old; waited {self.timeout:g} s for a new one)")


def make_camera(image_service: str, image_topic: str, max_age: float, timeout: float = CAMERA_TIMEOUT_S,
                is_shutdown: Callable[[], bool] = rospy.is_shutdown) -> Union[CameraClient, TopicCamera]:
    """The image topic's client when ``image_topic`` is set, else the camera service's."""
    if image_topic:
        return TopicCamera(image_topic, max_age, timeout, is_shutdown)
    return CameraClient(image_service, timeout, is_shutdown)
