"""The robot side: detect cube faces and serve the takeImage / label / RobotReady protocol.

``roslaunch cube_detect detect.launch`` (README, "The detector on the robot": the protocol as
implemented, zero faces and camera errors included). Private parameters: ``DetectorSettings``
in ``cube_detect.ros.settings``.

Publishes ``~faces`` (latched cube_detect/CubeFaces), ``~labels`` (latched std_msgs/String,
sorted class names comma-separated, "" for none), ``~image_annotated`` (sensor_msgs/Image bgr8,
drawn only while someone subscribes), ``~ready`` (latched std_msgs/Bool, true once serving),
``~state`` (latched std_msgs/String: waiting_take_image, detecting, waiting_robot_ready i/n,
stopped). Service ``~detect`` (cube_detect/DetectCubes): grab, detect, answer; never touches
the protocol parameters.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Any, Callable

import rospy
from cv_bridge import CvBridge
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String

from cube_detect.errors import CubeDetectError
from cube_detect.images import imgmsg_to_bgr
from cube_detect.inference import load_detector
from cube_detect.msg import CubeFace, CubeFaces
from cube_detect.protocol import ParameterProtocol, Snapshot
from cube_detect.ros.camera import CameraClient
from cube_detect.ros.params import RosParamStore
from cube_detect.ros.settings import DetectorSettings, read_settings
from cube_detect.srv import DetectCubes, DetectCubesResponse
from cube_detect.visualize import draw_detections


class DetectorNode:
    def __init__(self, settings: DetectorSettings, is_shutdown: Callable[[], bool] = rospy.is_shutdown):
        if settings.sort_axis not in ("x", "y"):
            raise CubeDetectError(f"~sort_axis must be x or y, got {settings.sort_axis!r}")
        self.settings = settings
        self.detector = load_detector(  # ModelError for a bad model: main() says it in one line
            settings.model or None,
            edgetpu_model_path=settings.edgetpu_model or None,
            labels_path=settings.labels or None,
            backend=settings.backend,
            threshold=settings.threshold,
            max_detections=settings.max_cubes,
            num_threads=settings.num_threads,
            sort_axis=settings.sort_axis,
        )
        rospy.loginfo("detector: model %s, backend %s", self.detector.model_path, self.detector.backend_reason)
        self.camera = CameraClient(settings.image_service, settings.camera_timeout, is_shutdown=is_shutdown)
        self.names = settings.protocol_names()
        self.protocol = ParameterProtocol(
            RosParamStore(), self.grab_and_detect, self.publish, names=self.names,
            rate=settings.rate,
            robot_ready_timeout=settings.robot_ready_timeout,
            camera_retries=settings.camera_retries,
            retry_delay=settings.camera_retry_delay,
            is_shutdown=is_shutdown,
            log=logging.getLogger("rosout"),  # rospy's logger: lines reach the screen and /rosout
            on_state=lambda state: self.state_pub.publish(String(state)),
        )
        self.bridge = CvBridge()
        self.detect_lock = threading.Lock()  # the interpreter is not thread-safe (protocol + service)
        self.faces_pub = rospy.Publisher("~faces", CubeFaces, queue_size=1, latch=True)
        self.labels_pub = rospy.Publisher("~labels", String, queue_size=1, latch=True)
        self.annotated_pub = rospy.Publisher("~image_annotated", Image, queue_size=1)
        self.ready_pub = rospy.Publisher("~ready", Bool, queue_size=1, latch=True)
        self.state_pub = rospy.Publisher("~state", String, queue_size=10, latch=True)
        self.service = rospy.Service("~detect", DetectCubes, self.handle_detect)

    # ------------------------------------------------------------------ camera + model
    def grab_and_detect(self) -> Snapshot:
        """Snapshot of the sorted detections; raises CameraError / ImageError (protocol retries)."""
        requested = rospy.Time.now()
        t0 = time.perf_counter()
        msg = self.camera.fetch()
        t1 = time.perf_counter()
        image = imgmsg_to_bgr(msg)  # ImageError for the empty image of a disabled camera
        with self.detect_lock:
            detections = self.detector.detect(image)
            timing = dict(self.detector.last_timing_ms)
        total_ms = timing.get("total", (time.perf_counter() - t1) * 1e3)
        header = msg.header
        if header.stamp.is_zero():  # poppy_controllers leaves the stamp empty
            header.stamp = requested
        summary = f"{self.detector.backend} {total_ms:.1f} ms, camera {(t1 - t0) * 1e3:.0f} ms"
        return Snapshot(detections, summary, extra={"header": header, "image": image, "ms": total_ms})

    def faces_message(self, snapshot: Snapshot) -> Any:
        faces = CubeFaces(header=snapshot.extra["header"], backend=self.detector.backend,
                          inference_ms=snapshot.extra["ms"])
        for det in snapshot.detections:
            x1, y1, x2, y2 = det.box
            faces.faces.append(CubeFace(label=det.label, id=int(det.class_id), score=float(det.score),
                                        xmin=x1, ymin=y1, xmax=x2, ymax=y2))
        return faces

    def publish(self, snapshot: Snapshot) -> None:
        self.faces_pub.publish(self.faces_message(snapshot))
        self.labels_pub.publish(String(",".join(d.label for d in snapshot.detections)))
        if self.annotated_pub.get_num_connections() > 0:  # drawing costs: only for a viewer
            drawn = draw_detections(snapshot.extra["image"], snapshot.detections)
            msg = self.bridge.cv2_to_imgmsg(drawn, "bgr8")
            msg.header = snapshot.extra["header"]
            self.annotated_pub.publish(msg)

    # ------------------------------------------------------------------ ~detect service
    def handle_detect(self, _request: Any) -> Any:
        try:
            snapshot = self.grab_and_detect()
        except CubeDetectError as exc:
            rospy.logwarn("detector: ~detect: %s", exc)
            return DetectCubesResponse(success=False, message=str(exc))
        dets = snapshot.detections
        rospy.loginfo("detector: ~detect: labels %s; %s", [int(d.class_id) for d in dets], snapshot.summary)
        return DetectCubesResponse(
            success=True, message=snapshot.summary, labels=[d.label for d in dets],
            ids=[int(d.class_id) for d in dets], scores=[float(d.score) for d in dets],
            faces=self.faces_message(snapshot),
        )

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        names = self.names
        self.ready_pub.publish(Bool(True))
        rospy.loginfo("detector: ready: waiting for %s true (labels -> %s, handshake %s, camera %s, "
                      "service %s)", names.take_image, names.label, names.robot_ready,
                      self.camera.service, rospy.resolve_name("~detect"))
        self.protocol.run()
        rospy.loginfo("detector: shutting down after %d cycle(s)", self.protocol.cycle)


def main() -> None:
    # rospy's own SIGINT handler runs the shutdown hooks inside the handler, on the main thread
    # wherever the signal interrupted it: inside a publish (a log line to /rosout, ~state), the
    # hooks wait forever for the lock that publish holds. Here the handler only raises a flag,
    # the protocol loop sees it within one polling period, and rospy shuts down from plain code.
    stop = threading.Event()
    rospy.init_node("detector", disable_signals=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    try:
        node = DetectorNode(read_settings(DetectorSettings, rospy.get_param),
                            is_shutdown=lambda: stop.is_set() or rospy.is_shutdown())
    except (CubeDetectError, ValueError) as exc:
        # One line naming the file or parameter, and no ~ready: launch files see the node die.
        rospy.logfatal("detector: %s", exc)
        sys.exit(2)
    node.run()
    rospy.signal_shutdown("signal" if stop.is_set() else "shutdown")
