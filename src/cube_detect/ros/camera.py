"""The camera clients of the detector and the capture node: a service, or an image topic.

``CameraClient``: the robot's camera service, poppy_controllers/GetImage (ours,
srv/GetImage.srv, has the same md5sum). rospy's service calls have no timeout, so each call
runs in a daemon thread and the caller stops waiting after ``timeout`` s: a camera that hangs
costs one cycle, not the node. The connection is persistent (no master lookup and no TCP
connect per image: ``make bench`` measures what that saves); a call that fails on a kept
connection (a restarted camera) is retried once on a new one, a camera that answers with an
error is not called again, and a hung connection is dropped.

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

from cube_detect.errors import CameraError
from cube_detect.ros.settings import CAMERA_TIMEOUT_S
from cube_detect.srv import GetImage


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (rospy's are long), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CameraClient:
    """``fetch()`` the camera's sensor_msgs/Image, or CameraError saying why not."""

    def __init__(self, service: str = "/get_image", timeout: float = CAMERA_TIMEOUT_S,
                 is_shutdown: Callable[[], bool] = rospy.is_shutdown, persistent: bool = True):
        self.service, self.timeout, self.is_shutdown = service, float(timeout), is_shutdown
        self.persistent = persistent
        self.source = f"camera service {service}"
        self._proxy: Optional[rospy.ServiceProxy] = None  # the kept connection, when persistent
        self._lock = threading.Lock()  # one call at a time on the kept connection

    def _drop(self, proxy: Optional[rospy.ServiceProxy]) -> None:
        if proxy is not None:
            if self._proxy is proxy:
                self._proxy = None
            proxy.close()

    def _call(self, used: Dict[str, Any], abandoned: threading.Event) -> Any:
        """One image: over the kept connection, or a connection of its own while another call
        (the ``~detect`` service during a cycle) holds the kept one."""
        if not self.persistent or not self._lock.acquire(blocking=False):
            return rospy.ServiceProxy(self.service, GetImage)().image
        try:
            return self._call_kept(used, abandoned, retry=True)
        finally:
            self._lock.release()

    def _call_kept(self, used: Dict[str, Any], abandoned: threading.Event, retry: bool) -> Any:
        """One image over the kept connection; on a transport failure of a kept connection (the
        camera restarted, its socket is gone), once more over a new one, unless the caller has
        stopped waiting or the node is shutting down."""
        reused = self._proxy is not None
        proxy = self._proxy or rospy.ServiceProxy(self.service, GetImage, persistent=True)
        self._proxy = used["proxy"] = proxy
        try:
            return proxy().image
        except Exception as exc:  # a broken kept connection (TransportTerminated and the like)
            if isinstance(exc, rospy.ServiceException) and "responded with an error" in str(exc):
                raise  # the camera's own answer: the connection is fine
            self._drop(proxy)
            if not (retry and reused) or abandoned.is_set() or self.is_shutdown():
                raise
        return self._call_kept(used, abandoned, retry=False)

    def fetch(self) -> Any:
        """The image; CameraError when the service is missing, fails or does not answer in time."""
        outcome: Dict[str, Any] = {}
        used: Dict[str, Any] = {}  # the kept connection this fetch's call is on, if any
        abandoned = threading.Event()  # set when this fetch stops waiting: its call must not retry

        def call() -> None:
            try:
                outcome["image"] = self._call(used, abandoned)
            except Exception as exc:  # reported to the caller below
                outcome["error"] = exc

        worker = threading.Thread(target=call, name="get_image", daemon=True)
        worker.start()
        deadline = time.monotonic() + self.timeout
        while worker.is_alive() and time.monotonic() < deadline and not self.is_shutdown():
            worker.join(0.05)
        if worker.is_alive():
            abandoned.set()
            self._drop(used.get("proxy"))  # its own hung connection only; the next fetch connects anew
            if self.is_shutdown():
                raise CameraError("shutting down")
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
