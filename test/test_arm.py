"""arm: the controller's (the arm's) side of the takeImage / label / RobotReady protocol on a fake clock."""

import pytest
from fakes import DictParamStore, FakeClock

from cube_detect.arm import CYCLE_TIMEOUT, NO_CUBE, ArmController
from cube_detect.paramstore import ProtocolNames
from cube_detect.protocol import DONE, SHUTDOWN

NAMES = ProtocolNames()
TAKE, LABEL, READY = NAMES.take_image, NAMES.label, NAMES.robot_ready


# ---------------------------------------------------------------------------- the arm's side
def scripted_detector(store, labels):
    """A tick hook writing what the detector writes: each label in turn, or 0 for none."""
    pending = list(labels)

    def tick():
        if store.values.get(TAKE) is True:
            store.set(TAKE, False)
            if not pending:
                store.set(LABEL, 0)
        elif store.values.get(READY) is not True or not pending:
            return
        if pending:
            store.set(LABEL, pending.pop(0))
            store.set(READY, False)

    return tick


def arm_on_fake_clock(labels=None, **kwargs):
    store, clock = DictParamStore(), FakeClock()
    if labels is not None:
        clock.on_tick.append(scripted_detector(store, labels))
    arm = ArmController(store, clock=clock, sleep=clock.sleep, **kwargs)
    arm.reset()
    return store, clock, arm


def test_arm_reset_and_request_write_what_the_course_controller_writes():
    store, _, arm = arm_on_fake_clock()
    arm.request()
    assert store.writes == [(TAKE, -1), (LABEL, -1), (READY, -1), (LABEL, -1), (TAKE, True)]


def test_arm_takes_each_cube_in_order_moving_each():
    store, clock, arm = arm_on_fake_clock([2, 1, 2], move_time=0.3)
    cycle = arm.run_cycle(expected=lambda: 3)
    assert (cycle.status, cycle.labels, cycle.number) == (DONE, [2, 1, 2], 1)
    assert store.values[READY] is True
    assert [v for n, v in store.writes if n == READY] == [-1, False, True, False, True, False, True]
    assert clock.now >= 0.9  # three moves


def test_arm_waits_until_the_number_of_cubes_is_known():
    store, clock, arm = arm_on_fake_clock([1])
    known = []
    clock.on_tick.append(lambda: clock.now > 0.5 and known.append(1))
    cycle = arm.run_cycle(expected=lambda: 1 if known else None)
    assert (cycle.status, cycle.labels) == (DONE, [1])
    assert cycle.ended > 0.5


@pytest.mark.parametrize("expected,ends_after", [(lambda: 0, 0.0), (lambda: None, 1.0)])
def test_arm_label_0_is_no_cube(expected, ends_after):
    store, clock, arm = arm_on_fake_clock([], no_cube_grace=1.0)
    cycle = arm.run_cycle(expected)
    assert (cycle.status, cycle.labels) == (NO_CUBE, [])
    assert cycle.ended - cycle.zero_since == pytest.approx(ends_after, abs=0.06)
    assert store.values[READY] == -1  # nothing to acknowledge


def test_arm_gives_up_after_its_timeout_or_at_shutdown():
    _, clock, arm = arm_on_fake_clock(timeout=2.0)  # nobody serves the protocol
    cycle = arm.run_cycle()
    assert cycle.status == CYCLE_TIMEOUT and cycle.ended == pytest.approx(2.0)
    _, clock, arm = arm_on_fake_clock(is_shutdown=lambda: clock.now > 0.5)
    assert arm.run_cycle().status == SHUTDOWN


@pytest.mark.parametrize("value,waiting", [(False, True), ("false", True), (0, True), (-1, False), ("-1", False),
                                           (True, False), ("maybe", False), (None, False)])
def test_arm_sees_a_cube_only_on_an_explicit_false(value, waiting):
    store, _, arm = arm_on_fake_clock()
    store.set(READY, value)
    assert arm.cube_waiting() is waiting
