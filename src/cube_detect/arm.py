"""The controller's (the arm's) side of the takeImage / label / RobotReady protocol, ROS-free.

:class:`ArmController` plays the course's manipulate node: it resets the three parameters, asks
for an image (``/takeImage`` true), takes each cube the detector hands over (``/label`` read once
``/RobotReady`` is false), "moves" it, and acknowledges (``/RobotReady`` true). The simulated
controller, the bench, the rostests and the unit tests play the arm with it; the detector's side
is ``cube_detect.protocol``. The parameters are any ``paramstore.ParamStore``; time and shutdown
are injected, so the arm runs in tests on a fake clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from cube_detect.paramstore import ParamStore, ProtocolNames, WaitTimeout, is_reset, parse_bool, wait_for
from cube_detect.protocol import DONE, SHUTDOWN

# How a cycle ended for the arm (ArmCycle.status): protocol's DONE and SHUTDOWN, or one of these;
# "" while it runs.
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
