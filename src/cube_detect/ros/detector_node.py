"""The robot side: detect cube faces and serve the takeImage / label / RobotReady protocol.

``roslaunch cube_detect detect.launch`` (README, "The detector on the robot": the protocol as
implemented, zero faces and camera errors included). Private parameters: ``DetectorSettings``
in ``cube_detect.ros.settings``.

Publishes ``~faces`` (latched cube_detect/CubeFaces), ``~labels`` (latched std_msgs/String,
sorted class names comma-separated, "" for none and before the first cycle), ``~classes``
(latched std_msgs/String: the model's classes, ``id name`` per line, as labels.txt),
``~image_annotated`` (sensor_msgs/Image bgr8, drawn only while someone subscribes), ``~ready``
(latched std_msgs/Bool, true once serving), ``~state`` (latched std_msgs/String:
waiting_take_image, detecting, waiting_robot_ready i/n, stopped). Service ``~detect``
(cube_detect/DetectCubes): grab, detect, answer; never touches the protocol parameters.

Frames come from the camera service, or from ``~image_topic`` (cube_detect.ros.camera). A
restart of the ROS master is noticed and survived (cube_detect.ros.master).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Any, Callable, List, Optional

import rospy
from cv_bridge import CvBridge
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String

from cube_detect import webguard
from cube_detect.errors import CubeDetectError, ModelError
from cube_detect.images import imgmsg_to_bgr
from cube_detect.inference import load_detector
from cube_detect.live import LiveView, serve_live
from cube_detect.msg import CubeFace, CubeFaces
from cube_detect.protocol import ParameterProtocol, Snapshot
from cube_detect.ros.camera import make_camera
from cube_detect.ros.master import MasterWatch, exit_replaced, restart_in_place
from cube_detect.ros.params import RosParamStore
from cube_detect.ros.settings import AUTO, DetectorSettings, optional, read_settings, resolve_user_path
from cube_detect.srv import DetectCubes, DetectCubesResponse
from cube_detect.visualize import draw_detections


def user_path(setting: str, value: str) -> str:
    """A path setting resolved as the user meant it (relative: from where roslaunch started)."""
    path, note = resolve_user_path(value)
    if note:
        rospy.loginfo("detector: ~%s: %s: %s", setting, note, path)
    return path


class DetectorNode:
    def __init__(self, settings: DetectorSettings, is_shutdown: Callable[[], bool] = rospy.is_shutdown):
        if settings.sort_axis not in ("x", "y"):
            raise CubeDetectError(f"~sort_axis must be x or y, got {settings.sort_axis!r}")
        if not 0.0 <= settings.threshold < 1.0:
            raise CubeDetectError(f"~threshold must be from 0 (the model's own) to below 1, got {settings.threshold:g}")
        if not 0.0 <= settings.nms_iou <= 1.0:
            raise CubeDetectError(f"~nms_iou must be from 0 to 1, got {settings.nms_iou:g}")
        self.settings = settings
        self.live: Optional[LiveView] = None  # the live page's view (web:=true), fed by publish/on_state
        model, model_note = resolve_user_path(settings.model)
        edgetpu = "" if settings.edgetpu_model.strip().lower() == AUTO else optional(settings.edgetpu_model)
        try:
            self.detector = load_detector(  # ModelError for a bad model: main() says it in one line
                model or None,
                edgetpu_model_path=user_path("edgetpu_model", edgetpu) or None,
                labels_path=user_path("labels", optional(settings.labels)) or None,
                backend=settings.backend,
                num_threads=settings.num_threads,
                decoding=settings.decode_settings(),  # threshold 0: the model's calibrated one
            )
        except ModelError as exc:
            raise ModelError(f"{exc} ({model_note})" if model_note else str(exc)) from None
        if model_note:
            rospy.loginfo("detector: ~model: %s", model_note)
        rospy.loginfo("detector: model %s, backend %s", self.detector.model_path, self.detector.backend_reason)
        self.camera = make_camera(settings.image_service, optional(settings.image_topic), settings.image_max_age,
                                  settings.camera_timeout, is_shutdown=is_shutdown)
        self.names = settings.protocol_names(rospy.resolve_name)  # remappings applied
        # The protocol subscribes /takeImage and the handshake through this store: it wakes when
        # the master pushes a change, and polls at `rate` as the safety net (README).
        self.protocol = ParameterProtocol(
            RosParamStore(), self.grab_and_detect, self.publish, names=self.names,
            rate=settings.rate,
            robot_ready_timeout=settings.robot_ready_timeout,
            camera_retries=settings.camera_retries,
            retry_delay=settings.camera_retry_delay,
            is_shutdown=is_shutdown,
            log=logging.getLogger("rosout"),  # rospy's logger: lines reach the screen and /rosout
            on_state=self.on_state,
        )
        self.bridge = CvBridge()
        self.detect_lock = threading.Lock()  # the interpreter is not thread-safe (protocol + service)
        self.faces_pub = rospy.Publisher("~faces", CubeFaces, queue_size=1, latch=True)
        self.labels_pub = rospy.Publisher("~labels", String, queue_size=1, latch=True)
        self.classes_pub = rospy.Publisher("~classes", String, queue_size=1, latch=True)
        self.annotated_pub = rospy.Publisher("~image_annotated", Image, queue_size=1)
        self.ready_pub = rospy.Publisher("~ready", Bool, queue_size=1, latch=True)
        self.state_pub = rospy.Publisher("~state", String, queue_size=10, latch=True)
        self.service = rospy.Service("~detect", DetectCubes, self.handle_detect)
        rospy.on_shutdown(self.protocol.wake)  # a wait may be a whole safety-net period long
        if settings.web:
            self.start_live_view(settings)

    def start_live_view(self, settings: DetectorSettings) -> None:
        """The read-only live page (live.py). A port that is taken is one error line and the
        detector goes on without the page."""
        store = self.protocol.store
        names = (self.names.take_image, self.names.label) + self.names.handshake_candidates
        view = LiveView(self.detector.backend_reason, self.detector.spec.labels,
                        lambda: {name: store.get(name, None) for name in names})
        try:
            url, stop = serve_live(view, settings.web_host, settings.web_port,
                                   log=lambda line: rospy.logdebug("detector: live view: %s", line))
        except OSError as exc:
            rospy.logerr("detector: live view not started: %s:%d: %s (web_port:=...)", settings.web_host,
                         settings.web_port, exc.strerror or exc)
            return
        self.live = view
        rospy.on_shutdown(stop)
        # The URL with its token goes to the terminal only (output="screen"), never to /rosout.
        print(f"detector: live view at {url}", flush=True)
        rospy.loginfo("detector: live view at %s", webguard.scrub(url))
        rospy.set_param("~live_url", webguard.scrub(url))  # for scripts (the token stays on the terminal)

    def on_state(self, state: str) -> None:
        self.state_pub.publish(String(state))
        if self.live is not None:
            self.live.set_state(state)

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
        if self.live is not None:
            self.live.update(snapshot.extra["image"], snapshot.detections, snapshot.summary)
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
    def handshake_line(self) -> str:
        """How the handshake parameter is chosen, for the ready line."""
        candidates = self.names.handshake_candidates
        if len(candidates) == 1:
            return f"handshake {candidates[0]}"
        store = self.protocol.store
        present = [name for name in candidates if store.get(name, None) is not None]
        now = ("set now: " + ", ".join(present)) if present else "neither set yet"
        return (f"handshake {' or '.join(candidates)}: whichever the controller has set ({now}; "
                f"robot_ready_param:=NAME for one)")

    def ready_line(self) -> str:
        names, detector = self.names, self.detector
        classes = ", ".join(f"{i} {n}" for i, n in sorted(detector.spec.labels.items()))
        own = " (the model's)" if not self.settings.threshold else ""
        return (f"detector: ready: waiting for {names.take_image} true (labels -> {names.label}, "
                f"{self.handshake_line()}, {self.camera.source}, service {rospy.resolve_name('~detect')}, "
                f"classes {classes}, threshold {detector.threshold:g}{own})")

    def run(self, watch: MasterWatch) -> None:
        labels = self.detector.spec.labels
        self.classes_pub.publish(String("\n".join(f"{i} {n}" for i, n in sorted(labels.items()))))
        self.labels_pub.publish(String(""))  # nothing detected yet: a message before the first cycle
        self.ready_pub.publish(Bool(True))
        rospy.loginfo("%s", self.ready_line())
        watch.start(lambda: restart_in_place("detector", self.settings, quiesce=self.detect_lock),
                    lambda uri: exit_replaced("detector", uri))
        self.protocol.run()
        rospy.loginfo("detector: shutting down after %d cycle(s)", self.protocol.cycle)


def main() -> None:
    # rospy's own SIGINT handler runs the shutdown hooks inside the handler, on the main thread
    # wherever the signal interrupted it: inside a publish (a log line to /rosout, ~state), the
    # hooks wait forever for the lock that publish holds. Here the handler only raises a flag and
    # wakes the protocol's wait (a re-entrant lock of its own), the protocol loop sees the flag,
    # and rospy shuts down from plain code.
    stop = threading.Event()
    wake: List[Callable[[], None]] = []

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()
        for function in wake:
            function()

    rospy.init_node("detector", disable_signals=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    def is_shutdown() -> bool:
        return stop.is_set() or rospy.is_shutdown()

    watch = MasterWatch("detector", is_shutdown=is_shutdown)  # notes the master registered with
    try:
        node = DetectorNode(read_settings(DetectorSettings, rospy.get_param), is_shutdown=is_shutdown)
    except (CubeDetectError, ValueError) as exc:
        # One line naming the file or parameter, and no ~ready: launch files see the node die.
        rospy.logfatal("detector: %s", exc)
        sys.exit(2)
    wake.append(node.protocol.wake)
    node.run(watch)
    rospy.signal_shutdown("signal" if stop.is_set() else "shutdown")
