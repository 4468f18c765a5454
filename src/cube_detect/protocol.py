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

Both sides live here: :class:`ParameterProtocol` is the detector's, :class:`ArmController`
the controller's (the arm's; played by the simulated controller, the bench and the tests).
The parameter store is any :class:`ParamStore` (``get(name, default)``, ``set(name, value)``:
``cube_detect.ros.params.RosParamStore`` on a real master, :class:`DictParamStore` in tests);
time and shutdown are injected, so both sides run in tests on a fake clock.

How the detector waits (:class:`ParamWaiter`): on a :class:`WatchedParamStore` (the ROS store:
the master pushes every change of a subscribed parameter) a wait ends as soon as ``/takeImage``
or ``/RobotReady`` is updated, and after ``1/rate`` s anyway: that poll is the safety net for a
push that is late or lost (or a master that restarted). On a plain store it is a poll at
``rate``. Either way the values decided on are read from the store, never taken from a push.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Set, Tuple, TypeVar, runtime_checkable

from cube_detect.errors import CubeDetectError

T = TypeVar("T")

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
    """The three parameter names; cells differ (``/robotReady`` in some scripts).

    ``robot_ready_alternatives``: other names the controller may use for the handshake (the
    detector's ``robot_ready_param:=auto``): each cycle the detector uses whichever of
    ``robot_ready`` and these the controller has set, all of them when it has set none or
    several (see :meth:`ParameterProtocol.resolve_handshake`). The arm's side uses ``robot_ready``.
    """

    take_image: str = "/takeImage"
    label: str = "/label"
    robot_ready: str = "/RobotReady"
    robot_ready_alternatives: Tuple[str, ...] = ()

    @property
    def handshake_candidates(self) -> Tuple[str, ...]:
        return (self.robot_ready,) + tuple(n for n in self.robot_ready_alternatives if n != self.robot_ready)


#: The handshake's names in the wild: the course text's, and the course's own integration code's.
ROBOT_READY_NAMES = ("/RobotReady", "/robotReady")


class ParamStore(Protocol):
    """Where the protocol's parameters live: the ROS parameter server, or a dict in tests."""

    def get(self, name: str, default: Any = None) -> Any: ...

    def set(self, name: str, value: Any) -> None: ...


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


class ParamUpdates:
    """A count of parameter updates that threads wait on: what wakes an event-driven wait.

    Whoever learns of an update (rospy's parameter cache, a test's store) calls ``notify()``;
    ``wait(seen, timeout)`` returns as soon as the count is no longer ``seen``. Take ``count``
    *before* reading the parameters: an update landing between the reads and the wait then
    ends the wait at once (no lost wake-up). ``notify()`` also wakes a waiter for shutdown; it
    may be called from a signal handler (the lock is re-entrant).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def notify(self) -> None:
        with self._cond:
            self._count += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> bool:
        """True once ``count`` differs from ``seen``; False after ``timeout`` s without."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count != seen, max(timeout, 0.0))


@runtime_checkable
class WatchedParamStore(ParamStore, Protocol):
    """A :class:`ParamStore` that is told when parameters change.

    ``watch(names)`` subscribes those names: from then on each update of one of them notifies
    ``updates``. A notification only means "read again": ``get`` returns the store's current
    value (a push may arrive late, after a newer value was written).
    """

    updates: ParamUpdates

    def watch(self, names: Sequence[str]) -> None: ...


class WatchedDictParamStore(DictParamStore):
    """A :class:`DictParamStore` whose every write notifies ``updates`` (tests, simulations).

    ``silent = True`` makes writes silent: a push that never arrives, as after a master restart.
    """

    def __init__(self, values: Optional[Dict[str, Any]] = None):
        super().__init__(values)
        self.updates = ParamUpdates()
        self.watched: List[str] = []
        self.silent = False

    def watch(self, names: Sequence[str]) -> None:
        self.watched.extend(n for n in names if n not in self.watched)

    def set(self, name: str, value: Any) -> None:
        super().set(name, value)
        if name in self.watched and not self.silent:
            self.updates.notify()


class ParamWaiter:
    """How one side of the protocol waits for its parameters to change.

    On a :class:`WatchedParamStore`, ``idle()`` returns as soon as a watched parameter is
    updated, and after ``period`` s (or at ``until``) without one: the safety-net poll, for a
    push that is lost or late. On a plain :class:`ParamStore` it is a poll: ``sleep(period)``.
    Use: ``seen = waiter.mark()``, read the parameters, ``waiter.idle(seen)``.
    """

    def __init__(self, store: ParamStore, period: float, *, sleep: Callable[[float], Any] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        if period <= 0:
            raise ValueError(f"period must be > 0 s, got {period}")
        self.store, self.period, self.sleep, self.clock = store, float(period), sleep, clock
        self.updates: Optional[ParamUpdates] = store.updates if isinstance(store, WatchedParamStore) else None

    @property
    def event_driven(self) -> bool:
        return self.updates is not None

    def watch(self, names: Sequence[str]) -> None:
        """Subscribe ``names`` (nothing to do on a plain store)."""
        if isinstance(self.store, WatchedParamStore):
            self.store.watch(names)

    def mark(self) -> int:
        """The update count to pass to ``idle()``: take it before reading the parameters."""
        return self.updates.count if self.updates is not None else 0

    def idle(self, seen: int, until: Optional[float] = None) -> None:
        """Until an update after ``seen``, ``period`` s, or the clock's ``until``, whichever first."""
        if self.updates is None:
            self.sleep(self.period)
            return
        timeout = self.period if until is None else min(self.period, until - self.clock())
        if timeout > 0:
            self.updates.wait(seen, timeout)

    def wake(self) -> None:
        """End the current ``idle()`` now (shutdown)."""
        if self.updates is not None:
            self.updates.notify()


class WaitTimeout(TimeoutError):
    """:func:`wait_for` gave up; the message says what it waited for."""


def wait_for(predicate: Callable[[], T], timeout: float, what: str = "the condition", *,
             period: float = 0.02, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], Any] = time.sleep,
             is_shutdown: Callable[[], bool] = lambda: False) -> T:
    """The first truthy value of ``predicate()``, polled every ``period`` s (at least once).

    Raises :class:`WaitTimeout` ("timed out after 10 s waiting for /RobotReady false") after
    ``timeout`` s, or as soon as ``is_shutdown()``. ``sleep`` may be a ``Condition.wait`` (its
    lock held by the caller): the predicate is then re-checked at every notification.
    """
    deadline = clock() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if is_shutdown():
            raise WaitTimeout(f"shutting down while waiting for {what}")
        left = deadline - clock()
        if left <= 0:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        sleep(min(period, left))


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

    Waits end when ``/takeImage`` or the handshake (``/RobotReady``, or any of its candidates) is
    updated, on a :class:`WatchedParamStore` (all are watched when ``run()`` starts), and every
    ``1/rate`` s in any case: the safety-net poll there, the only way to notice a change on a
    plain store. ``wake()`` ends a wait now.
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

    # -- the cycle ----------------------------------------------------------------------------
    def wait_for_take_image(self) -> bool:
        """Wait until ``takeImage`` is true (True) or shutdown (False)."""
        self._set_state(WAITING_TAKE_IMAGE)
        while not self.is_shutdown():
            seen = self.waiter.mark()
            if self.read_flag(self.names.take_image):
                return True
            self.waiter.idle(seen)
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
                           self.cycle, reason, names.label, self.handshake_text())
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
                          self.cycle, note, names.label, self.handshake_text())
            return CycleResult(NO_FACES)

        labels = [int(d.class_id) for d in detections]
        self.log.info("cycle %d: labels %s (%s)%s", self.cycle, labels, _describe(detections), note)
        handshake = self.resolve_handshake()
        result = CycleResult(DONE, labels=labels)
        for index, class_id in enumerate(labels):
            # The contract: /label first, then the handshake false. A controller reads /label
            # once it sees the handshake false, so it never reads the previous cube's label.
            self.store.set(names.label, class_id)
            for name in handshake:
                self.store.set(name, False)
            outcome = self.wait_for_robot_ready(index, len(labels), class_id)
            if outcome != DONE:
                result.status = outcome
                return result
            result.delivered += 1
        return result

    def wait_for_robot_ready(self, index: int, count: int, class_id: int) -> str:
        """Wait until ``RobotReady`` is true: DONE, PREEMPTED, ROBOT_TIMEOUT or SHUTDOWN.

        After ``wait_log_period`` s one warning names the parameter and the handshake's contract
        (a controller that acknowledged on ``/label`` alone had its true overwritten); then an
        info line every ``wait_log_period`` s.
        """
        names = self.names
        handshake = self.handshake or names.handshake_candidates
        ready_text = self.handshake_text()
        self._set_state(f"{WAITING_ROBOT_READY} {index + 1}/{count}")
        start = self.clock()
        next_log = start + self.wait_log_period
        give_up = start + self.robot_ready_timeout if self.robot_ready_timeout > 0 else math.inf
        warned = False
        while True:
            if self.is_shutdown():
                return SHUTDOWN
            seen = self.waiter.mark()
            acked = next((name for name in handshake if self.read_flag(name)), None)
            if acked is not None:
                if len(handshake) > 1 and acked != self.acknowledged_on:
                    self.log.info("handshake: the controller acknowledges on %s", acked)
                self.acknowledged_on = acked
                return DONE
            if self.read_flag(names.take_image):
                self.log.warning("cycle %d: %s is true again while waiting for %s (cube %d/%d): "
                                 "the controller restarted; abandoning this cycle",
                                 self.cycle, names.take_image, ready_text, index + 1, count)
                return PREEMPTED
            now = self.clock()
            waited = now - start
            if self.robot_ready_timeout > 0 and waited >= self.robot_ready_timeout:
                self.log.warning("cycle %d: %s still not true after %.1f s (cube %d/%d): "
                                 "abandoning this cycle (a controller must set it true once it has seen it "
                                 "false; one that answers on %s alone can lose its answer)",
                                 self.cycle, ready_text, waited, index + 1, count, names.label)
                return ROBOT_TIMEOUT
            if now >= next_log:
                if not warned:
                    self.log.warning(
                        "cycle %d: %s still not true after %.0f s (cube %d/%d, %s = %d): still waiting. "
                        "The controller must set %s true only after it has seen it false; one that answers "
                        "as soon as %s changes can have its true overwritten by the detector's false "
                        "(README: the handshake contract)",
                        self.cycle, ready_text, waited, index + 1, count, names.label, class_id,
                        ready_text, names.label)
                    warned = True
                else:
                    self.log.info("cycle %d: waiting for %s true (cube %d/%d, label %d) for %.0f s",
                                  self.cycle, ready_text, index + 1, count, class_id, waited)
                next_log += self.wait_log_period
            self.waiter.idle(seen, until=min(next_log, give_up))

    def run(self, max_cycles: Optional[int] = None) -> int:
        """Serve cycles until shutdown (or ``max_cycles``); returns the number of cycles run.

        Parameter-server errors (master briefly unreachable) are retried after a second; they
        never end the loop. The same error again is logged once, not every second.
        """
        done = 0
        last_error = ""
        while not self.is_shutdown() and (max_cycles is None or done < max_cycles):
            try:
                if not self._watching:  # subscribe the flags (a watched store), once
                    self.waiter.watch([self.names.take_image, *self.names.handshake_candidates])
                    self._watching = True
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


# ------------------------------------------------------------------------------------ the arm
# How a cycle ended for the arm (ArmCycle.status); "" while it runs.
NO_CUBE = "no_cube"  # /label 0 before any cube: the detector found nothing, or had no image
CYCLE_TIMEOUT = "timeout"  # the cycle did not end within the arm's timeout


def _is_zero_label(value: Any) -> bool:
    """The detector's "no cube" label: 0 as a number (not False, not -1)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0


@dataclass
class ArmCycle:
    """One request of the arm: the labels it took, in order, and how the cycle ended."""

    number: int  # 1 for the arm's first request
    started: float  # the arm's clock when /takeImage was set true
    expected: Callable[[], Optional[int]] = lambda: None  # cubes in this cycle, once known
    labels: List[Any] = field(default_factory=list)  # /label of each cube taken, in order
    status: str = ""  # DONE, NO_CUBE, CYCLE_TIMEOUT, SHUTDOWN; "" while running
    ended: Optional[float] = None
    zero_since: Optional[float] = None  # when /label 0 was first seen


class ArmController:
    """The controller's (the arm's) side of the protocol, as the course's manipulate node plays it.

    ``reset()`` sets the three parameters to -1 (what the controller does at start-up).
    ``request()`` starts a cycle: ``/label`` := -1 (so that the detector's 0, "no cube", is seen),
    then ``/takeImage`` := true. Each ``step()`` is one poll, at most one action: when
    ``/RobotReady`` is false (not the -1 of a reset) it takes the cube (reads ``/label``), "moves"
    it for ``move_time`` s, then sets ``/RobotReady`` true; it says when the cycle is over:

    - **done**: as many cubes taken as ``expected()`` says the cycle has (the length of the
      detector's ``~faces`` message, or a test's truth; None while not known yet);
    - **no cube**: ``/label`` is 0 before any cube (nothing found, or no image: ``/RobotReady``
      is never set false then), once ``expected()`` is known or ``no_cube_grace`` s later.

    ``run_cycle()`` is ``request()`` then ``step()`` every 1/``rate`` s until the cycle is over,
    ``timeout`` s have passed (CYCLE_TIMEOUT) or shutdown (SHUTDOWN). Event-driven callers (the
    bench answers the detector's ``~state`` messages) use ``read_label()`` and ``cube_moved()``.
    """

    def __init__(
        self,
        store: ParamStore,
        *,
        names: ProtocolNames = ProtocolNames(),
        rate: float = 20.0,
        move_time: float = 0.0,
        timeout: float = 30.0,
        no_cube_grace: float = 1.0,
        take_value: Any = True,
        ready_value: Any = True,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        is_shutdown: Callable[[], bool] = lambda: False,
    ):
        if rate <= 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate}")
        self.store, self.names = store, names
        self.period = 1.0 / float(rate)
        self.move_time, self.timeout, self.no_cube_grace = float(move_time), float(timeout), float(no_cube_grace)
        self.take_value, self.ready_value = take_value, ready_value  # what `rosparam set` may leave: "true"
        self.sleep, self.clock, self.is_shutdown = sleep, clock, is_shutdown
        self.cycle: Optional[ArmCycle] = None
        self.requests = 0
        self.moving_until: Optional[float] = None

    def reset(self) -> None:
        """Every protocol parameter to -1, as the course's controller does at (re)start."""
        for name in (self.names.take_image, self.names.label, self.names.robot_ready):
            self.store.set(name, -1)

    def request(self, expected: Callable[[], Optional[int]] = lambda: None) -> ArmCycle:
        """Ask for an image: ``/label`` := -1, ``/takeImage`` := true; the new cycle.

        ``expected()``: how many cubes this cycle has, once known (None before).
        """
        self.moving_until = None
        self.store.set(self.names.label, -1)
        self.requests += 1
        self.cycle = ArmCycle(self.requests, self.clock(), expected)
        self.store.set(self.names.take_image, self.take_value)
        return self.cycle

    def cube_waiting(self) -> bool:
        """Whether the detector waits for the arm: ``/RobotReady`` explicitly false (not -1)."""
        value = self.store.get(self.names.robot_ready, None)
        try:
            return parse_bool(value, self.names.robot_ready) is False and not is_reset(value)
        except ValueError:
            return False

    def read_label(self) -> Any:
        """``/label``: the class id of the cube the detector hands over now."""
        return self.store.get(self.names.label, None)

    def cube_moved(self) -> None:
        """The cube is where it goes: ``/RobotReady`` := true."""
        self.moving_until = None
        self.store.set(self.names.robot_ready, self.ready_value)

    def take_cube(self) -> Any:
        """Take the cube the detector waits on: its label, recorded; moving starts."""
        label = self.read_label()
        if self.cycle is not None:
            self.cycle.labels.append(label)
        if self.move_time > 0:
            self.moving_until = self.clock() + self.move_time
        else:
            self.cube_moved()
        return label

    def _finish(self, status: str) -> bool:
        assert self.cycle is not None
        self.cycle.status, self.cycle.ended = status, self.clock()
        return True

    def step(self) -> bool:
        """One poll of the parameters, at most one action; True once the current cycle is over."""
        cycle = self.cycle
        if cycle is None or cycle.status:
            return True
        now = self.clock()
        if self.moving_until is not None:
            if now >= self.moving_until:
                self.cube_moved()
            return False
        if self.cube_waiting():
            self.take_cube()
            return False
        count = cycle.expected()
        if not cycle.labels and _is_zero_label(self.read_label()):
            cycle.zero_since = now if cycle.zero_since is None else cycle.zero_since
            if count is not None or now - cycle.zero_since >= self.no_cube_grace:
                return self._finish(NO_CUBE)
        elif cycle.labels and count is not None and len(cycle.labels) >= count:
            return self._finish(DONE)
        return False

    def run_cycle(self, expected: Callable[[], Optional[int]] = lambda: None) -> ArmCycle:
        """``request()``, then poll until the cycle is over, ``timeout`` s or shutdown."""
        cycle = self.request(expected)
        try:
            wait_for(self.step, self.timeout, "the end of the cycle", period=self.period, clock=self.clock,
                     sleep=self.sleep, is_shutdown=self.is_shutdown)
        except WaitTimeout:
            self._finish(SHUTDOWN if self.is_shutdown() else CYCLE_TIMEOUT)
        return cycle
