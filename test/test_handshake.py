"""The handshake's contract, tested both ways (issue 15, item 1).

The detector writes ``/label``, then ``/RobotReady := false`` (the course's order), and waits for
``/RobotReady`` true. A controller that follows the contract (acknowledge only after seeing
``/RobotReady`` false, reading ``/label`` then) never reads a stale label, however the two
threads interleave. A controller that acknowledges as soon as ``/label`` changes can have its
``true`` overwritten by the detector's ``false``: the detector cannot see that, so it reports
it (a warning naming the parameter and the contract), and abandons the cycle after
``robot_ready_timeout`` when one is set: never a silent hang.
"""

import logging
import random
import threading
import time

import pytest
from fakes import DictParamStore, FakeClock, face

from cube_detect.arm import ArmController
from cube_detect.paramstore import ProtocolNames, wait_for
from cube_detect.protocol import (
    DONE,
    PREEMPTED,
    ROBOT_TIMEOUT,
    SHUTDOWN,
    WAITING_TAKE_IMAGE,
    ParameterProtocol,
    Snapshot,
)

NAMES = ProtocolNames()
TAKE, LABEL, READY = NAMES.take_image, NAMES.label, NAMES.robot_ready


class JitterStore(DictParamStore):
    """A parameter server shared by two threads, each call taking a random few tens of µs (as
    XML-RPC calls do), so that the threads interleave at every possible point."""

    def __init__(self, seed=0):
        super().__init__()
        self.lock = threading.Lock()
        self.rng = random.Random(seed)

    def _jitter(self):
        with self.lock:
            pause = self.rng.random() * 1e-4
        time.sleep(pause)

    def get(self, name, default=None):
        self._jitter()
        with self.lock:
            return super().get(name, default)

    def set(self, name, value):
        self._jitter()
        with self.lock:
            super().set(name, value)


class ScriptedCamera:
    """grab_and_detect: the next scene's faces; keeps each cycle's truth."""

    def __init__(self, scenes):
        self.scenes = list(scenes)
        self.truth = []

    def __call__(self):
        labels = self.scenes.pop(0)
        self.truth.append(labels)
        return Snapshot([face(c) for c in labels])


def run_detector(store, camera, **kwargs):
    stop = threading.Event()
    protocol = ParameterProtocol(store, camera, rate=2000.0, is_shutdown=stop.is_set,
                                 log=logging.getLogger("cube_detect.protocol"), **kwargs)
    thread = threading.Thread(target=protocol.run, daemon=True)
    thread.start()
    return protocol, stop, thread


def test_a_course_style_controller_never_reads_a_stale_label_over_hundreds_of_cycles():
    rng = random.Random(15)
    scenes = [[rng.choice((1, 2)) for _ in range(rng.randint(1, 4))] for _ in range(300)]
    store = JitterStore(seed=1)
    camera = ScriptedCamera(scenes)
    protocol, stop, thread = run_detector(store, camera)
    # ArmController is the course's controller: it waits for /RobotReady false (explicitly, not
    # the -1 of a reset), reads /label at once, then sets /RobotReady true.
    arm = ArmController(store, rate=5000.0, timeout=10.0)
    arm.reset()
    cycles = []
    try:
        for number in range(len(scenes)):
            cycles.append(arm.run_cycle(lambda n=number: len(camera.truth[n]) if len(camera.truth) > n else None))
    finally:
        stop.set()
        thread.join(5)
    assert [c.status for c in cycles] == [DONE] * len(scenes)
    assert [c.labels for c in cycles] == camera.truth == scenes  # never a stale (previous cube's) label
    assert sum(map(len, scenes)) > 600


class LabelAcker:
    """A controller that breaks the contract: it acknowledges as soon as ``/label`` is a new
    cube's id (one-cube cycles, as in the issue's drill), without waiting for RobotReady false.

    ``race``: the share of cycles on which its ack lands between the detector's two writes
    (label, then RobotReady false): the store calls it right after the label write, as a
    controller polling every millisecond sometimes does."""

    def __init__(self, store, protocol, race, seed=0):
        self.store, self.protocol = store, protocol
        self.rng = random.Random(seed)
        self.race = race
        self.raced = 0
        self.acked = False
        store.after_set = self.after_set

    def after_set(self, name, value):
        if name == LABEL and isinstance(value, int) and value > 0 and self.rng.random() < self.race:
            self.raced += 1
            self.acked = True
            DictParamStore.set(self.store, READY, True)  # the ack, before the detector's false

    def run_cycle(self, timeout):
        """Ask, ack on the label, wait until the detector is idle again; its result."""
        before = self.protocol.cycle
        self.acked = False
        self.store.set(LABEL, -1)
        self.store.set(TAKE, True)
        wait_for(lambda: self.store.get(LABEL) not in (-1, None), timeout, "a label", period=1e-4)
        if not self.acked:
            self.store.set(READY, True)  # may also land before the detector's false: lost too
        wait_for(lambda: self.protocol.cycle > before and self.protocol.state == WAITING_TAKE_IMAGE,
                 timeout, "the detector idle again", period=1e-4)
        return self.protocol.last_result


class HookedStore(JitterStore):
    after_set = None

    def set(self, name, value):
        super().set(name, value)
        if self.after_set is not None:
            self.after_set(name, value)


def test_a_controller_that_acks_on_the_label_alone_is_reported_never_a_silent_hang(caplog):
    store = HookedStore(seed=2)
    camera = ScriptedCamera([[random.Random(n).choice((1, 2))] for n in range(300)])
    protocol, stop, thread = run_detector(store, camera, robot_ready_timeout=0.1, wait_log_period=0.03)
    controller = LabelAcker(store, protocol, race=0.1, seed=3)
    ArmController(store).reset()
    results = []
    with caplog.at_level(logging.WARNING, logger="cube_detect.protocol"):
        try:
            for _ in range(300):
                results.append(controller.run_cycle(timeout=5.0))  # WaitTimeout = a hang
        finally:
            stop.set()
            thread.join(5)
    statuses = [r.status for r in results]
    assert set(statuses) <= {DONE, ROBOT_TIMEOUT}
    lost = statuses.count(ROBOT_TIMEOUT)
    assert lost >= controller.raced > 10  # every overwritten ack (some lost without help)
    warnings = [r.getMessage() for r in caplog.records]
    contract = [w for w in warnings if "must set /RobotReady true only after it has seen it false" in w]
    abandons = [w for w in warnings if "/RobotReady still not true after" in w and "abandoning" in w]
    assert len(contract) == len(abandons) == lost, warnings[:4]
    assert all("/label" in w for w in contract + abandons)


def test_the_overwritten_ack_is_one_warning_naming_the_parameter_then_quiet_info_lines(caplog):
    """robot_ready_timeout 0 (the default): the detector waits for ever, but says why at once."""
    store = DictParamStore()
    clock = FakeClock()
    store.set(TAKE, True)
    protocol = ParameterProtocol(store, lambda: [face(2)], sleep=clock.sleep, clock=clock,
                                 is_shutdown=lambda: clock.now > 16.0, wait_log_period=5.0)
    real_set = store.set

    def set_and_race(name, value):
        real_set(name, value)
        if name == LABEL:
            real_set(READY, True)  # the label-acker's answer, overwritten by the next write

    store.set = set_and_race
    with caplog.at_level(logging.INFO, logger="cube_detect.protocol"):
        protocol.run()
    assert protocol.last_result.status == SHUTDOWN
    waits = [(r.levelname, r.getMessage()) for r in caplog.records if "cycle 1: " in r.getMessage()][1:]
    assert waits[0] == ("WARNING", "cycle 1: /RobotReady still not true after 5 s (cube 1/1, /label = 2): still "
                        "waiting. The controller must set /RobotReady true only after it has seen it false; "
                        "one that answers as soon as /label changes can have its true overwritten by the "
                        "detector's false (README: the handshake contract)")
    assert waits[1:] == [("INFO", "cycle 1: waiting for /RobotReady true (cube 1/1, label 2) for 10 s"),
                         ("INFO", "cycle 1: waiting for /RobotReady true (cube 1/1, label 2) for 15 s")]


def test_a_new_take_image_still_preempts_a_cycle_whose_ack_was_lost():
    store = DictParamStore({TAKE: True})
    clock = FakeClock()
    protocol = ParameterProtocol(store, lambda: [face(1)], sleep=clock.sleep, clock=clock)
    clock.on_tick.append(lambda: clock.now > 1.0 and store.values.__setitem__(TAKE, True))
    assert protocol.run(max_cycles=1) == 1
    assert protocol.last_result.status == PREEMPTED


@pytest.mark.parametrize("controller_name", ["/RobotReady", "/robotReady"])
def test_auto_handshake_uses_the_name_the_controller_has_set(controller_name, caplog):
    """robot_ready_param:=auto (the detector's default): /RobotReady and /robotReady controllers."""
    names = ProtocolNames(robot_ready="/RobotReady", robot_ready_alternatives=("/robotReady",))
    store = JitterStore(seed=4)
    scenes = [[2, 1], [1], [2, 2, 1]]
    camera = ScriptedCamera(scenes)
    with caplog.at_level(logging.INFO, logger="cube_detect.protocol"):
        protocol, stop, thread = run_detector(store, camera, names=names)
        arm = ArmController(store, names=ProtocolNames(robot_ready=controller_name), rate=2000.0, timeout=5.0)
        arm.reset()  # the course's controller: its three parameters to -1
        try:
            cycles = [arm.run_cycle(lambda n=n: len(scenes[n])) for n in range(len(scenes))]
        finally:
            stop.set()
            thread.join(5)
    assert [(c.status, c.labels) for c in cycles] == [(DONE, s) for s in scenes]
    other = ({"/RobotReady", "/robotReady"} - {controller_name}).pop()
    assert other not in store.values, "the name the controller does not use is never written"
    assert protocol.handshake == (controller_name,)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("handshake")]
    assert lines == [f"handshake: {controller_name} (the one the controller has set; {other} not set)"]


def test_auto_handshake_with_neither_name_set_writes_both_and_takes_the_first_answer(caplog):
    names = ProtocolNames(robot_ready="/RobotReady", robot_ready_alternatives=("/robotReady",))
    store = DictParamStore({TAKE: True})
    clock = FakeClock()

    def controller():  # a /robotReady controller that never reset its parameter
        if store.values.get("/robotReady") is False:
            store.set("/robotReady", True)

    clock.on_tick.append(controller)
    protocol = ParameterProtocol(store, lambda: [face(1), face(2)], names=names, sleep=clock.sleep, clock=clock)
    with caplog.at_level(logging.INFO, logger="cube_detect.protocol"):
        assert protocol.run(max_cycles=1) == 1
    assert protocol.last_result.status == DONE and protocol.last_result.delivered == 2
    writes = [(n, v) for n, v in store.writes if n != TAKE]
    assert writes == [(LABEL, 1), ("/RobotReady", False), ("/robotReady", False), ("/robotReady", True),
                      (LABEL, 2), ("/RobotReady", False), ("/robotReady", False), ("/robotReady", True)]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("handshake")]
    assert lines == ["handshake: /RobotReady and /robotReady (the controller has set none yet): each is set "
                     "false, the first one set true acknowledges",
                     "handshake: the controller acknowledges on /robotReady"]
