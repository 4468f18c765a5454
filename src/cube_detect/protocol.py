"""The course's takeImage / label / RobotReady parameter protocol, ROS-free.

The arm's controller and the detector talk through three ROS parameters:

1. the controller sets ``/takeImage`` true;
2. the detector sets it false, grabs an image, detects and sorts the cube faces, publishes them;
3. for each face in order: the detector sets ``/label`` to the class id (1 or 2), **then**
   ``/RobotReady`` false, then waits until the controller sets ``/RobotReady`` true;
4. back to 1, until shutdown.

The handshake's contract (the course's write order, kept): the controller acknowledges a cube
only after it has seen ``/RobotReady`` false, and reads ``/label`` then (it is already the new
value: it was written first). A controller that acknowledges as soon as ``/label`` changes can
have its ``true`` overwritten by the detector's ``false``, which comes a moment later: then
both wait. The detector cannot see an overwritten write, so it says so: a warning naming the
parameter and the contract once a cube has waited ``wait_log_period`` s, and the cycle is
abandoned after ``robot_ready_timeout`` s when that is set.

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

This module is the detector's side (:class:`ParameterProtocol`); the controller's (the arm's,
played by the simulated controller, the bench and the tests) is ``cube_detect.arm``. The
parameters (their names, reading a flag, the store, waiting for a change) are
``cube_detect.paramstore``: a wait ends as soon as a watched store says ``/takeImage`` or
``/RobotReady`` was updated, and after ``1/rate`` s anyway (the safety-net poll; on a plain store
the only way to notice). Time and shutdown are injected, so the cycle runs in tests on a fake clock.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Set, Tuple

from cube_detect.errors import CubeDetectError
from cube_detect.paramstore import ParamStore, ParamWaiter, ProtocolNames, parse_bool


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

    Waits end when ``/takeImage`` or the handshake (``/RobotReady``, or any of its candidates) is
    updated, on a ``paramstore.WatchedParamStore`` (all are watched when ``run()`` starts), and
    every ``1/rate`` s in any case: the safety-net poll there, the only way to notice a change on
    a plain store. ``wake()`` ends a wait now.
    """

    def __init__(
        self,
        store: ParamStore,
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
        self.waiter = ParamWaiter(store, self.period, sleep=sleep, clock=clock)
        self._watching = False
        self.log = log or logging.getLogger("cube_detect.protocol")
        self.on_state = on_state
        self.state = ""
        self.cycle = 0
        self.last_result: Optional[CycleResult] = None
        self._reported_junk: Set[Tuple[str, str]] = set()
        self.handshake: Tuple[str, ...] = ()  # the handshake name(s) of the last cycle (resolve_handshake)
        self.acknowledged_on = ""  # the name the controller last acknowledged on

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

    def wake(self) -> None:
        """End the current wait for a parameter now (a shutdown request: call after setting it)."""
        self.waiter.wake()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            try:
                self.on_state(state)
            except Exception:  # a side channel, like publish
                self.log.debug("on_state(%r) failed", state, exc_info=True)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, max_cycles: Optional[int] = None) -> int:
        """Serve cycles until shutdown (or ``max_cycles``); returns the number of cycles run.

        Parameter-server errors (master briefly unreachable) are retried after a second; they
        never end the loop. The same error again is logged once, not every second.
        """
        done = 0
        last_error = ""
        while not self.is_shutdown() and (max_cycles is None or done < max_cycles):
            try:
                self._watch_flags()
                if not self.wait_for_take_image():
                    break
                self.last_result = self.run_cycle()
                done += 1
                last_error = ""
            except Exception as exc:
                if self.is_shutdown():
                    break
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:
                    self.log.error("parameter protocol: %s; retrying every second", error)
                last_error = error
                self._pause(1.0)
        self._set_state(STOPPED)
        return done

    def _watch_flags(self) -> None:
        """Subscribe ``takeImage`` and every handshake candidate (on a watched store), once."""
        if not self._watching:
            self.waiter.watch([self.names.take_image, *self.names.handshake_candidates])
            self._watching = True

    def wait_for_take_image(self) -> bool:
        """Wait until ``takeImage`` is true (True) or shutdown (False)."""
        self._set_state(WAITING_TAKE_IMAGE)
        while not self.is_shutdown():
            seen = self.waiter.mark()
            if self.read_flag(self.names.take_image):
                return True
            self.waiter.idle(seen)
        return False

    # -- one cycle, step by step --------------------------------------------------------------
    def run_cycle(self) -> CycleResult:
        """One cycle, ``takeImage`` having been seen true.

        Acknowledge the request (``takeImage`` := false), grab an image and detect (with retries),
        publish what was seen, then hand the faces over one at a time. No image, or no face: the
        cycle ends with ``label`` := 0 and the handshake untouched.
        """
        self.cycle += 1
        self._set_state(DETECTING)
        self.store.set(self.names.take_image, False)
        snapshot, reason = self.grab()
        if snapshot is None:
            return self._end_without_image(reason)
        detections = list(snapshot.detections)
        self._publish(snapshot)
        note = f"; {snapshot.summary}" if snapshot.summary else ""
        if not detections:
            return self._end_without_faces(note)
        return self._hand_over(detections, note)

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

    def _end_without_image(self, reason: str) -> CycleResult:
        """The camera gave nothing: ``label`` := 0 (unless shutting down), the handshake untouched."""
        if self.is_shutdown():
            return CycleResult(SHUTDOWN, error=reason)
        self.store.set(self.names.label, 0)
        self.log.error("cycle %d: no image, no labels: %s; %s := 0, %s untouched",
                       self.cycle, reason, self.names.label, self.handshake_text())
        return CycleResult(CAMERA_ERROR, error=reason)

    def _publish(self, snapshot: Snapshot) -> None:
        try:
            self.publish(snapshot)
        except Exception:  # publishing is a side channel: the arm still gets its labels
            self.log.error("cycle %d: publishing the detections failed", self.cycle, exc_info=True)

    def _end_without_faces(self, note: str) -> CycleResult:
        """Nothing to hand over: ``label`` := 0, the handshake untouched (the arm has nothing to move)."""
        self.store.set(self.names.label, 0)
        self.log.info("cycle %d: no cube faces found%s; %s := 0, %s untouched",
                      self.cycle, note, self.names.label, self.handshake_text())
        return CycleResult(NO_FACES)

    def _hand_over(self, detections: Sequence[Any], note: str) -> CycleResult:
        """Each face in order: offer its label, wait for the controller's acknowledgement."""
        labels = [int(d.class_id) for d in detections]
        self.log.info("cycle %d: labels %s (%s)%s", self.cycle, labels, _describe(detections), note)
        handshake = self.resolve_handshake()
        result = CycleResult(DONE, labels=labels)
        for index, class_id in enumerate(labels):
            self._offer(class_id, handshake)
            outcome = self.wait_for_robot_ready(index, len(labels), class_id)
            if outcome != DONE:
                result.status = outcome
                return result
            result.delivered += 1
        return result

    def resolve_handshake(self) -> Tuple[str, ...]:
        """The handshake parameter(s) of this cycle.

        One name (``robot_ready_param`` set): that one. Several candidates (``auto``: /RobotReady
        and /robotReady): the one the controller has set (course controllers reset theirs to -1
        at start-up), when exactly one is set; all of them when none or several are: each is set
        false and the first one set true acknowledges. A change is logged once.
        """
        candidates = self.names.handshake_candidates
        if len(candidates) == 1:
            self.handshake = candidates
            return candidates
        present = tuple(name for name in candidates if self.store.get(name, None) is not None)
        chosen = present if len(present) == 1 else candidates
        if chosen != self.handshake:
            if len(chosen) == 1:
                others = ", ".join(n for n in candidates if n not in chosen)
                self.log.info("handshake: %s (the one the controller has set; %s not set)", chosen[0], others)
            else:
                self.log.info("handshake: %s (%s): each is set false, the first one set true acknowledges",
                              " and ".join(chosen),
                              "the controller has set several" if present else "the controller has set none yet")
            self.handshake = chosen
        return chosen

    def handshake_text(self) -> str:
        """The handshake name(s) as the log lines say them: ``/RobotReady`` or ``/RobotReady or /robotReady``."""
        return " or ".join(self.handshake or self.names.handshake_candidates)

    def _offer(self, class_id: int, handshake: Sequence[str]) -> None:
        """The contract: ``label`` first, then the handshake false. A controller reads ``label``
        once it sees the handshake false, so it never reads the previous cube's label."""
        self.store.set(self.names.label, class_id)
        for name in handshake:
            self.store.set(name, False)

    # -- waiting for the controller -----------------------------------------------------------
    def wait_for_robot_ready(self, index: int, count: int, class_id: int) -> str:
        """Wait until ``RobotReady`` is true: DONE, PREEMPTED, ROBOT_TIMEOUT or SHUTDOWN.

        After ``wait_log_period`` s one warning names the parameter and the handshake's contract
        (a controller that acknowledged on ``/label`` alone had its true overwritten); then an
        info line every ``wait_log_period`` s.
        """
        handshake = self.handshake or self.names.handshake_candidates
        self._set_state(f"{WAITING_ROBOT_READY} {index + 1}/{count}")
        start = self.clock()
        next_log = start + self.wait_log_period
        give_up = start + self.robot_ready_timeout if self.robot_ready_timeout > 0 else math.inf
        warned = False
        while True:
            if self.is_shutdown():
                return SHUTDOWN
            seen = self.waiter.mark()
            if self._acknowledged(handshake):
                return DONE
            if self._preempted(index, count):
                return PREEMPTED
            now = self.clock()
            waited = now - start
            if self._given_up(waited, index, count):
                return ROBOT_TIMEOUT
            if now >= next_log:
                self._log_waiting(waited, index, count, class_id, first=not warned)
                warned = True
                next_log += self.wait_log_period
            self.waiter.idle(seen, until=min(next_log, give_up))

    def _acknowledged(self, handshake: Sequence[str]) -> bool:
        """Whether the controller has set a handshake name true; remembers (and logs a change of)
        the name it acknowledges on."""
        acked = next((name for name in handshake if self.read_flag(name)), None)
        if acked is None:
            return False
        if len(handshake) > 1 and acked != self.acknowledged_on:
            self.log.info("handshake: the controller acknowledges on %s", acked)
        self.acknowledged_on = acked
        return True

    def _preempted(self, index: int, count: int) -> bool:
        """``takeImage`` true again: the controller restarted and asks anew (logged)."""
        if not self.read_flag(self.names.take_image):
            return False
        self.log.warning("cycle %d: %s is true again while waiting for %s (cube %d/%d): "
                         "the controller restarted; abandoning this cycle",
                         self.cycle, self.names.take_image, self.handshake_text(), index + 1, count)
        return True

    def _given_up(self, waited: float, index: int, count: int) -> bool:
        """``robot_ready_timeout`` (when set) has passed without an acknowledgement (logged)."""
        if not (self.robot_ready_timeout > 0 and waited >= self.robot_ready_timeout):
            return False
        self.log.warning("cycle %d: %s still not true after %.1f s (cube %d/%d): "
                         "abandoning this cycle (a controller must set it true once it has seen it "
                         "false; one that answers on %s alone can lose its answer)",
                         self.cycle, self.handshake_text(), waited, index + 1, count, self.names.label)
        return True

    def _log_waiting(self, waited: float, index: int, count: int, class_id: int, first: bool) -> None:
        """The first time, a warning with the handshake's contract; then an info line."""
        names, ready_text = self.names, self.handshake_text()
        if first:
            self.log.warning(
                "cycle %d: %s still not true after %.0f s (cube %d/%d, %s = %d): still waiting. "
                "The controller must set %s true only after it has seen it false; one that answers "
                "as soon as %s changes can have its true overwritten by the detector's false "
                "(README: the handshake contract)",
                self.cycle, ready_text, waited, index + 1, count, names.label, class_id,
                ready_text, names.label)
        else:
            self.log.info("cycle %d: waiting for %s true (cube %d/%d, label %d) for %.0f s",
                          self.cycle, ready_text, index + 1, count, class_id, waited)
