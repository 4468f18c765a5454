"""The course's takeImage / label / RobotReady parameter protocol, ROS-free.

The arm's controller and the detector talk through three ROS parameters:

1. the controller sets ``/takeImage`` true;
2. the detector sets it false, grabs an image, detects and sorts the cube faces, publishes them;
3. for each face in order: the detector sets ``/label`` to the class id (1 or 2) and
   ``/RobotReady`` false, then waits until the controller sets ``/RobotReady`` true;
4. back to 1, until shutdown.

Decisions this module makes (documented in the README):

- **Zero faces**: ``/label`` := 0, ``/RobotReady`` is not touched (the controller has nothing to
  move), one log line, the empty list is published, back to waiting for ``/takeImage``.
- **Camera errors** (service down or failing, timeout, empty image): retried with a doubling
  back-off ``camera_retries`` times; then the cycle ends like zero faces (``/label`` := 0,
  ``/RobotReady`` untouched) with an error log line saying why; nothing is published.
- **A new ``/takeImage`` true while waiting for ``/RobotReady``** (a controller restarted and reset
  its parameters, then asked again) abandons the rest of the cycle and starts a new one.
- ``robot_ready_timeout`` > 0 abandons the rest of a cycle when the controller does not answer.
- Parameter values may be bools, 0/1/-1 (-1 = reset / not set = false) or strings from
  ``rosparam set``; anything else is logged once per value and read as false.

The parameter store is any object with ``get(name, default)`` and ``set(name, value)``
(rospy.get_param / set_param in the node, :class:`DictParamStore` in tests); time and
shutdown are injected, so the whole state machine runs in tests on a fake clock.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from cube_detect.errors import CubeDetectError

_TRUE_WORDS = {"true", "yes", "on"}
_FALSE_WORDS = {"false", "no", "off"}


def parse_bool(value: Any, name: str = "parameter") -> Optional[bool]:
    """Read a protocol flag: True, False, or None when the parameter is not set at all.

    Accepts bools, the numbers 1 / 0 / -1 (-1 is how controllers reset a parameter: false),
    and their strings as ``rosparam set`` leaves them ("true", "True", "1", "false", "-1",
    also "yes"/"no"/"on"/"off"). Raises ValueError naming ``name`` for anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    number: Optional[float] = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_WORDS:
            return True
        if text in _FALSE_WORDS:
            return False
        try:
            number = float(text)
        except ValueError:
            number = None
    if number is not None and not math.isnan(number):
        if number == 1:
            return True
        if number in (0, -1):
            return False
    raise ValueError(
        f"parameter {name}: {value!r} is not a flag (expected true/false, 1/0, or -1 = not set)"
    )


def is_reset(value: Any) -> bool:
    """True for the controllers' "reset" value -1 (as a number or a string)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value == -1
    if isinstance(value, str):
        try:
            return float(value.strip()) == -1
        except ValueError:
            return False
    return False


@dataclass(frozen=True)
class ProtocolNames:
    """The three parameter names; cells differ (``/robotReady`` in some scripts)."""

    take_image: str = "/takeImage"
    label: str = "/label"
    robot_ready: str = "/RobotReady"


class DictParamStore:
    """A parameter store over a dict (tests, simulations); records every write in ``writes``."""

    def __init__(self, values: Optional[Dict[str, Any]] = None):
        self.values: Dict[str, Any] = dict(values or {})
        self.writes: List[Tuple[str, Any]] = []

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value
        self.writes.append((name, value))

    def has(self, name: str) -> bool:
        return name in self.values

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


class CameraError(CubeDetectError):
    """No image could be had: camera service missing, failing or too slow."""


@dataclass
class Snapshot:
    """What ``grab_and_detect`` returns: the sorted detections and a note for the cycle's log line.

    ``detections`` are objects with ``class_id``, ``label`` and ``score`` (inference.Detection).
    """

    detections: Sequence[Any]
    summary: str = ""  # e.g. "cpu, 12.3 ms": appended to the cycle's log line
    extra: Any = None  # whatever the caller wants back in publish() (the image, its stamp...)


# Outcomes of a cycle (CycleResult.status).
DONE = "done"  # every face handed over, RobotReady true after each
NO_FACES = "no_faces"  # label := 0, RobotReady untouched
CAMERA_ERROR = "camera_error"  # label := 0, RobotReady untouched, nothing published
ROBOT_TIMEOUT = "robot_ready_timeout"  # the controller did not set RobotReady true in time
PREEMPTED = "preempted"  # takeImage true again while waiting for RobotReady
SHUTDOWN = "shutdown"

# What the detector is doing (ParameterProtocol.state, reported through on_state).
WAITING_TAKE_IMAGE = "waiting_take_image"
DETECTING = "detecting"
WAITING_ROBOT_READY = "waiting_robot_ready"  # + " i/n": cube i of n handed over
STOPPED = "stopped"


@dataclass
class CycleResult:
    status: str
    labels: List[int] = field(default_factory=list)  # class ids, in the order handed over
    delivered: int = 0  # faces the controller confirmed (RobotReady true)
    error: str = ""


def _describe(detections: Sequence[Any]) -> str:
    return ", ".join(f"{d.label} {float(d.score):.2f}" for d in detections)


class ParameterProtocol:
    """The detector's side of the protocol, one cycle after another until ``is_shutdown()``.

    ``grab_and_detect()`` returns a :class:`Snapshot` (or a plain list of detections) sorted in
    the arm's order, and raises a :class:`CubeDetectError` (CameraError, ImageError) when no
    image could be had. ``publish(snapshot)`` is called once per cycle that got an image.
    """

    def __init__(
        self,
        store,
        grab_and_detect: Callable[[], Any],
        publish: Callable[[Snapshot], None] = lambda snapshot: None,
        *,
        names: ProtocolNames = ProtocolNames(),
        rate: float = 20.0,
        robot_ready_timeout: float = 0.0,
        camera_retries: int = 2,
        retry_delay: float = 0.5,
        wait_log_period: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        is_shutdown: Callable[[], bool] = lambda: False,
        log: Optional[logging.Logger] = None,
        on_state: Callable[[str], None] = lambda state: None,
    ):
        if rate <= 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate}")
        if camera_retries < 0:
            raise ValueError(f"camera_retries must be >= 0, got {camera_retries}")
        self.store, self.grab_and_detect, self.publish = store, grab_and_detect, publish
        self.names = names
        self.period = 1.0 / float(rate)
        self.robot_ready_timeout = float(robot_ready_timeout)
        self.camera_retries, self.retry_delay = int(camera_retries), float(retry_delay)
        self.wait_log_period = float(wait_log_period)
        self.sleep, self.clock, self.is_shutdown = sleep, clock, is_shutdown
        self.log = log or logging.getLogger("cube_detect.protocol")
        self.on_state = on_state
        self.state = ""
        self.cycle = 0
        self.last_result: Optional[CycleResult] = None
        self._reported_junk: set = set()

    # -- parameters ---------------------------------------------------------------------------
    def read_flag(self, name: str) -> bool:
        """The flag ``name`` as a bool; unreadable values are logged once and read as false."""
        value = self.store.get(name, None)
        try:
            return bool(parse_bool(value, name))
        except ValueError as exc:
            key = (name, repr(value))
            if key not in self._reported_junk:
                self._reported_junk.add(key)
                self.log.warning("%s; read as false", exc)
            return False

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` in polling-period slices; False as soon as shutdown is requested."""
        end = self.clock() + seconds
        while True:
            if self.is_shutdown():
                return False
            left = end - self.clock()
            if left <= 0:
                return True
            self.sleep(min(self.period, left))

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            try:
                self.on_state(state)
            except Exception:  # a side channel, like publish
                self.log.debug("on_state(%r) failed", state, exc_info=True)

    # -- the cycle ----------------------------------------------------------------------------
    def wait_for_take_image(self) -> bool:
        """Poll until ``takeImage`` is true (True) or shutdown (False)."""
        self._set_state(WAITING_TAKE_IMAGE)
        while not self.is_shutdown():
            if self.read_flag(self.names.take_image):
                return True
            self.sleep(self.period)
        return False

    def grab(self) -> Tuple[Optional[Snapshot], str]:
        """``grab_and_detect`` with retries: (snapshot, "") or (None, why it failed)."""
        attempts = self.camera_retries + 1
        delay = self.retry_delay
        reason = ""
        for attempt in range(1, attempts + 1):
            try:
                result = self.grab_and_detect()
                return (result if isinstance(result, Snapshot) else Snapshot(list(result))), ""
            except CubeDetectError as exc:
                reason = str(exc)
            except Exception as exc:  # a bug or an unexpected library error: never kill the loop
                reason = f"{type(exc).__name__}: {exc}"
                self.log.error("cycle %d: unexpected error while grabbing/detecting", self.cycle, exc_info=True)
            if attempt < attempts:
                self.log.warning("cycle %d: camera attempt %d/%d failed: %s; retrying in %.1f s",
                                 self.cycle, attempt, attempts, reason, delay)
                if not self._pause(delay):
                    return None, "shutdown"
                delay *= 2
        return None, f"{reason} (after {attempts} attempt{'s' if attempts > 1 else ''})"

    def run_cycle(self) -> CycleResult:
        """One cycle, ``takeImage`` having been seen true."""
        self.cycle += 1
        names = self.names
        self._set_state(DETECTING)
        self.store.set(names.take_image, False)
        snapshot, reason = self.grab()
        if snapshot is None:
            if self.is_shutdown():
                return CycleResult(SHUTDOWN, error=reason)
            self.store.set(names.label, 0)
            self.log.error("cycle %d: no image, no labels: %s; %s := 0, %s untouched",
                           self.cycle, reason, names.label, names.robot_ready)
            return CycleResult(CAMERA_ERROR, error=reason)

        detections = list(snapshot.detections)
        try:
            self.publish(snapshot)
        except Exception:  # publishing is a side channel: the arm still gets its labels
            self.log.error("cycle %d: publishing the detections failed", self.cycle, exc_info=True)
        note = f"; {snapshot.summary}" if snapshot.summary else ""
        if not detections:
            self.store.set(names.label, 0)
            self.log.info("cycle %d: no cube faces found%s; %s := 0, %s untouched",
                          self.cycle, note, names.label, names.robot_ready)
            return CycleResult(NO_FACES)

        labels = [int(d.class_id) for d in detections]
        self.log.info("cycle %d: labels %s (%s)%s", self.cycle, labels, _describe(detections), note)
        result = CycleResult(DONE, labels=labels)
        for index, class_id in enumerate(labels):
            self.store.set(names.label, class_id)
            self.store.set(names.robot_ready, False)
            outcome = self.wait_for_robot_ready(index, len(labels), class_id)
            if outcome != DONE:
                result.status = outcome
                return result
            result.delivered += 1
        return result

    def wait_for_robot_ready(self, index: int, count: int, class_id: int) -> str:
        """Poll until ``RobotReady`` is true: DONE, PREEMPTED, ROBOT_TIMEOUT or SHUTDOWN."""
        names = self.names
        self._set_state(f"{WAITING_ROBOT_READY} {index + 1}/{count}")
        start = self.clock()
        next_log = start + self.wait_log_period
        while True:
            if self.is_shutdown():
                return SHUTDOWN
            if self.read_flag(names.robot_ready):
                return DONE
            if self.read_flag(names.take_image):
                self.log.warning("cycle %d: %s is true again while waiting for %s (cube %d/%d): "
                                 "the controller restarted; abandoning this cycle",
                                 self.cycle, names.take_image, names.robot_ready, index + 1, count)
                return PREEMPTED
            now = self.clock()
            waited = now - start
            if self.robot_ready_timeout > 0 and waited >= self.robot_ready_timeout:
                self.log.warning("cycle %d: %s still not true after %.1f s (cube %d/%d): "
                                 "abandoning this cycle", self.cycle, names.robot_ready, waited,
                                 index + 1, count)
                return ROBOT_TIMEOUT
            if now >= next_log:
                self.log.info("cycle %d: waiting for %s true (cube %d/%d, label %d) for %.0f s",
                              self.cycle, names.robot_ready, index + 1, count, class_id, waited)
                next_log += self.wait_log_period
            self.sleep(self.period)

    def run(self, max_cycles: Optional[int] = None) -> int:
        """Serve cycles until shutdown (or ``max_cycles``); returns the number of cycles run.

        Parameter-server errors (master briefly unreachable) are logged and retried after a
        second; they never end the loop.
        """
        done = 0
        while not self.is_shutdown() and (max_cycles is None or done < max_cycles):
            try:
                if not self.wait_for_take_image():
                    break
                self.last_result = self.run_cycle()
                done += 1
            except Exception as exc:
                if self.is_shutdown():
                    break
                self.log.error("parameter protocol: %s: %s; retrying in 1 s", type(exc).__name__, exc)
                self._pause(1.0)
        self._set_state(STOPPED)
        return done
