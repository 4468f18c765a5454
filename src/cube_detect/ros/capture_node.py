"""Capture a labelled data set from the robot's camera (``roslaunch cube_detect capture.launch``).

Each capture calls the camera service and saves the frame as ``<dataset>/{train,test}/imageNNN.png``
with a labelImg XML pre-annotated by the model (see cube_detect.capture). Triggers, any of them:

- ``~capture``: service std_srvs/Trigger, answers success and the saved image's path in ``message``;
- ``~trigger_param``: a parameter name: when it reads true (bool, 1, "true", ...) one image is
  captured, and the parameter is set back to false once it is saved. A capture that fails
  leaves it true (retried every second, until it works or someone sets it false). The parameter
  is subscribed: read when the master pushes a change, and every ``TRIGGER_SAFETY_NET_S`` s too;
- ``~interval``: seconds between automatic captures;
- the preview window, when ``~preview`` and $DISPLAY is set: SPACE or s saves the frame shown,
  q quits.

Every capture, whatever triggered it, sets ``~last_error`` ("" when it saved, else why not) and,
when it saved, ``~last_saved`` (the image's path): what a script reads. Frames come from the
camera service or ``~image_topic``. ``~review``: the review page of the data set is served
while capturing (cube_detect.review). A restart of the ROS master is survived
(cube_detect.ros.master).

Private parameters: ``CaptureSettings`` in ``cube_detect.ros.settings``. A failed capture
(camera down, empty image, service error) logs one line and saves nothing. On shutdown: one
summary line (images per split, faces per class pre-annotated).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import cv2
import rospy
from std_srvs.srv import Trigger, TriggerResponse

from cube_detect.capture import CaptureResult, CaptureSession
from cube_detect.dataset_writer import DatasetWriter
from cube_detect.errors import CameraError, CubeDetectError
from cube_detect.images import imgmsg_to_bgr
from cube_detect.inference import DecodeSettings, Detector, load_detector
from cube_detect.paramstore import ParamWaiter, parse_bool
from cube_detect.ros.camera import make_camera
from cube_detect.ros.master import MasterWatch, exit_replaced, restart_in_place
from cube_detect.ros.params import RosParamStore
from cube_detect.ros.settings import CaptureSettings, optional, read_settings, resolve_user_path

TRIGGER_SAFETY_NET_S = 1.0  # ~trigger_param is read on every pushed change, and this often anyway
TRIGGER_RETRY_S = 1.0  # a failed parameter-triggered capture is tried again after this
PREVIEW_PERIOD_S = 0.2  # preview refresh (one /get_image call each)
WINDOW = "cube_detect capture (SPACE/s: save, q: quit)"


def display_usable() -> bool:
    """Whether OpenCV can open a window here. Probed in a child process: with $DISPLAY set but
    no X server behind it (ssh without forwarding), Qt aborts the whole process."""
    probe = "import cv2; cv2.namedWindow('probe'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        done = subprocess.run([sys.executable, "-c", probe], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        rospy.logwarn("capture: no preview window (%s): running headless", exc)
        return False
    if done.returncode != 0:
        why = (done.stderr.decode(errors="replace").strip().splitlines() or [f"exit {done.returncode}"])[-1]
        rospy.logwarn("capture: no preview window on DISPLAY=%s (%s): running headless",
                      os.environ.get("DISPLAY"), why)
    return done.returncode == 0


def load_detector_or_none(model: str, threshold: float) -> Optional[Detector]:
    """The pre-annotation model, or None after one warning: capturing works without it.

    ``threshold`` 0: the model's calibrated threshold."""
    path, note = resolve_user_path(model)
    if note:
        rospy.loginfo("capture: ~model: %s: %s", note, path)
    try:
        detector = load_detector(path or None, decoding=DecodeSettings(threshold=threshold or None))
    except Exception as exc:  # ModelError, missing tflite-runtime, ...
        rospy.logwarn("capture: cannot load the model (%s%s): capturing without pre-annotation", exc,
                      f"; {note}" if note else "")
        return None
    rospy.loginfo("capture: pre-annotating with %s (%s)", detector.model_path, detector.backend_reason)
    return detector


def start_review(dataset: Path, host: str, port: int) -> Optional[Callable[[], None]]:
    """Serve the review page of ``dataset`` beside the capture; its stop(), or None after one
    error line (Flask missing, port taken): capturing goes on without it."""
    try:
        from cube_detect.review import ReviewUnavailable, serve_in_thread
        from cube_detect.webguard import scrub
    except ImportError as exc:  # a broken install: the page is optional
        rospy.logerr("capture: no review page (%s): capturing goes on", exc)
        return None
    try:
        url, stop = serve_in_thread(dataset, host=host, port=port)
    except ReviewUnavailable as exc:
        rospy.logerr("capture: no review page: %s; capturing goes on", exc)
        return None
    except CubeDetectError as exc:
        rospy.logerr("capture: no review page (%s); capturing goes on", exc)
        return None
    public = scrub(url)
    if public != url:
        # The URL with its token goes to this node's terminal only (output="screen"), once: never
        # to /rosout or a log file, where anyone reading the logs could use it.
        print(f"capture: review page {url} (keep it to yourself: anyone with it can edit the data set)",
              flush=True)
        rospy.loginfo("capture: review page %s (its token is printed on the node's terminal only; "
                      "images appear there as they are saved)", public)
    else:
        rospy.loginfo("capture: review page %s (images appear there as they are saved)", url)
    return stop


class CaptureNode:
    def __init__(self, settings: CaptureSettings, watch: Optional[MasterWatch] = None):
        if not settings.dataset:
            raise CubeDetectError("~dataset is required: the folder the images go to "
                                  "(roslaunch cube_detect capture.launch dataset:=...)")
        self.settings = settings
        dataset, note = resolve_user_path(settings.dataset)
        if note:
            rospy.loginfo("capture: ~dataset: %s: %s", note, dataset)
        self.writer = DatasetWriter(Path(dataset), settings.test_share)
        detector = load_detector_or_none(settings.model, settings.threshold) if settings.annotate else None
        self.session = CaptureSession(self.writer, detector)
        self.camera = make_camera(settings.image_service, optional(settings.image_topic), settings.image_max_age)
        self.lock = threading.Lock()  # one capture at a time, whatever triggered it
        self.last_failure: Optional[str] = None
        self.closed = False
        rospy.on_shutdown(self.log_summary)
        self.stop_review = start_review(self.writer.root, settings.review_host, settings.review_port) \
            if settings.review else None
        if self.stop_review is not None:
            rospy.on_shutdown(self.stop_review)
        self.set_status("", "")

        self.trigger_param = optional(settings.trigger_param)
        self.param_warned = False
        self.trigger_retry_at = 0.0  # time.monotonic() before which a failed trigger is not retried
        self.params = RosParamStore()
        self.trigger_waiter = ParamWaiter(self.params, TRIGGER_SAFETY_NET_S)
        self.timers: List[Any] = []
        if self.trigger_param:
            rospy.on_shutdown(self.trigger_waiter.wake)
            threading.Thread(target=self.trigger_loop, name="trigger_param", daemon=True).start()
        if settings.interval > 0:
            self.timers.append(rospy.Timer(rospy.Duration(settings.interval), lambda _event: self.capture("timer")))
        self.service = rospy.Service("~capture", Trigger, self.handle_capture)
        rospy.loginfo("capture: saving to %s (test share %.2f, next image%03d) from %s; triggers: service %s%s%s",
                      self.writer.root, self.writer.test_share, self.writer.next_number(), self.camera.source,
                      rospy.resolve_name("~capture"),
                      f", parameter {rospy.resolve_name(self.trigger_param)}" if self.trigger_param else "",
                      f", every {settings.interval:g} s" if settings.interval > 0 else "")
        if watch is not None:
            watch.start(self.restart, lambda uri: exit_replaced("capture", uri))

    def restart(self) -> None:
        """The master was restarted: the summary so far, then this node again (cube_detect.ros.master)."""
        with self.lock:
            self.closed = True  # no capture starts while the process is replaced
        restart_in_place("capture", self.settings, before=self.log_summary_line)

    def set_status(self, error: str, saved: Optional[str]) -> None:
        """``~last_error`` ("" after a capture that saved) and ``~last_saved``: what scripts read."""
        try:
            rospy.set_param("~last_error", error)
            if saved is not None:
                rospy.set_param("~last_saved", saved)
        except Exception as exc:  # master away: the log line says it anyway
            rospy.logdebug("capture: cannot set ~last_error: %s", exc)

    # ------------------------------------------------------------------ camera and saving
    def fetch(self) -> Tuple[Any, str]:
        """The camera's sensor_msgs/Image and "", or (None, reason)."""
        try:
            return self.camera.fetch(), ""
        except CameraError as exc:
            return None, str(exc)

    def capture(self, trigger: str, msg: Any = None) -> CaptureResult:
        """Fetch (unless ``msg`` is given), save, log one line; returns the CaptureResult."""
        result = None
        with self.lock:
            if self.closed:  # a timer or service call racing the shutdown: the summary is final
                return CaptureResult(False, "nothing saved: the node is shutting down")
            if msg is None:
                msg, reason = self.fetch()
                result = self.session.fail(f"nothing saved: {reason}") if msg is None else None
            if result is None:
                result = self.session.capture_message(msg)
        repeats = trigger == "timer" or trigger.startswith("parameter")  # tried again and again
        if result.ok:
            self.last_failure = None
            rospy.loginfo("capture (%s): %s", trigger, result.log_line())
            self.set_status("", result.message)
        else:
            if not repeats or result.message != self.last_failure:
                # One line per failed capture; the timer and a pending trigger parameter say it
                # once until a capture works again.
                rospy.logwarn("capture (%s): %s", trigger, result.message)
            self.last_failure = result.message if repeats else None
            self.set_status(result.message, None)
        return result

    # ------------------------------------------------------------------ triggers
    def handle_capture(self, _request: Any) -> Any:
        result = self.capture("service")
        return TriggerResponse(success=result.ok, message=result.message)

    def trigger_loop(self) -> None:
        """Capture whenever ~trigger_param turns true: woken by the master's pushes, safety-net reads."""
        watching = False
        while not rospy.is_shutdown():
            seen = self.trigger_waiter.mark()
            try:
                if not watching:
                    self.trigger_waiter.watch([self.trigger_param])
                    watching = True
                self.check_trigger_param()
            except (rospy.ROSException, OSError):
                pass  # master unreachable (or going away at shutdown): the next read tries again
            except Exception as exc:  # a bug must not end the trigger for good
                rospy.logerr("capture: parameter trigger: %s: %s", type(exc).__name__, exc)
            retry = self.trigger_retry_at if self.trigger_retry_at > time.monotonic() else None
            self.trigger_waiter.idle(seen, until=retry)  # after a failed capture: retried on time

    def check_trigger_param(self) -> None:
        try:
            wanted = parse_bool(self.params.get(self.trigger_param, None), self.trigger_param)
        except ValueError as exc:
            if not self.param_warned:  # once, not ten times a second
                rospy.logwarn("capture: %s", exc)
                self.param_warned = True
            return
        self.param_warned = False
        if not wanted:
            self.trigger_retry_at = 0.0
            return
        if time.monotonic() < self.trigger_retry_at:
            return
        result = self.capture(f"parameter {self.trigger_param}")
        if result.ok:
            # Reset once saved, and only then: a script sets it true and waits for false (the
            # image is on disk); while it stays true, ~last_error says why nothing was saved.
            self.params.set(self.trigger_param, False)
        elif not self.closed:
            self.trigger_retry_at = time.monotonic() + TRIGGER_RETRY_S

    def preview_loop(self) -> None:
        """Show the camera at a few frames per second; SPACE/s saves the frame shown, q quits."""
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            rospy.logwarn("capture: no preview window (%s): running headless", str(exc).splitlines()[0])
            rospy.spin()
            return
        last_problem = None
        rospy.loginfo("capture: preview window open: SPACE or s saves the frame shown, q quits")
        try:
            while not rospy.is_shutdown():
                msg, problem = self.fetch()
                frame = None
                if msg is not None:
                    try:
                        frame = imgmsg_to_bgr(msg)
                    except CubeDetectError as exc:
                        problem = str(exc)
                if problem != last_problem and problem:
                    rospy.logwarn("capture preview: %s", problem)  # once per new problem, not per frame
                last_problem = problem
                if frame is not None:
                    cv2.imshow(WINDOW, frame)
                key = cv2.waitKey(int(PREVIEW_PERIOD_S * 1000)) & 0xFF  # also paces the loop
                if key in (ord(" "), ord("s")):
                    if msg is None or frame is None:
                        rospy.logwarn("capture (key): nothing saved: %s", problem or "no frame")
                        self.session.fail(problem)
                    else:
                        self.capture("key", msg)  # exactly the frame on screen
                elif key == ord("q"):
                    rospy.signal_shutdown("q pressed in the preview window")
                    break
        finally:
            cv2.destroyAllWindows()

    def log_summary(self) -> None:
        with self.lock:
            self.closed = True
        self.log_summary_line()

    def log_summary_line(self) -> None:
        on_disk = self.writer.count_on_disk()
        rospy.loginfo("capture summary: %s; %s now holds %s", self.session.summary.line(), self.writer.root,
                      ", ".join(f"{k} {v}" for k, v in on_disk.items()))


def main() -> None:
    rospy.init_node("capture")
    watch = MasterWatch("capture")  # notes the master registered with
    try:
        settings = read_settings(CaptureSettings, rospy.get_param)
        node = CaptureNode(settings, watch)
    except (CubeDetectError, ValueError) as exc:
        rospy.logfatal("capture: %s", exc)
        raise SystemExit(2) from None
    if settings.preview and os.environ.get("DISPLAY") and display_usable():
        node.preview_loop()
    else:
        rospy.spin()  # headless: no OpenCV window call at all
