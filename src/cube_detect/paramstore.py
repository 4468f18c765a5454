"""The protocol's parameters, ROS-free: their names, reading a flag, the store, and waiting on it.

Both sides of the takeImage / label / RobotReady protocol (``cube_detect.protocol``, the
detector's; ``cube_detect.arm``, the controller's) read and write their parameters here:

- :func:`parse_bool` reads a flag as the controllers leave it (bools, 0/1/-1, the strings of
  ``rosparam set``); :func:`is_reset` recognises the controllers' -1.
- :class:`ProtocolNames`: the three parameter names (cells differ: ``/robotReady`` in some).
- :class:`ParamStore` (``get(name, default)``, ``set(name, value)``) is where they live:
  ``cube_detect.ros.params.RosParamStore`` on a real master, a dict in the tests. A
  :class:`WatchedParamStore` is also told when they change (:class:`ParamUpdates`).
- :class:`ParamWaiter`: how the detector waits for a change. On a watched store (the ROS store:
  the master pushes every change of a subscribed parameter) a wait ends as soon as a watched
  parameter is updated, and after its period anyway: that poll is the safety net for a push that
  is late or lost (or a master that restarted). On a plain store it is a poll. Either way the
  values decided on are read from the store, never taken from a push.
- :func:`wait_for`: poll a condition until it holds, with a timeout that names what it waited for.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence, Tuple, TypeVar, runtime_checkable

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
    several (see ``ParameterProtocol.resolve_handshake``). The arm's side uses ``robot_ready``.
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
