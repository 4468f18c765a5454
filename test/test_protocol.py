"""protocol: the detector's side of the takeImage / label / RobotReady protocol, with the arm, on a fake clock."""

import logging
import threading
import time
from types import SimpleNamespace

import pytest
from fakes import DictParamStore, FakeClock, WatchedDictParamStore, face

from cube_detect.arm import NO_CUBE, ArmController
from cube_detect.errors import CameraError, ImageError
from cube_detect.paramstore import ProtocolNames
from cube_detect.protocol import (
    CAMERA_ERROR,
    DONE,
    NO_FACES,
    PREEMPTED,
    ROBOT_TIMEOUT,
    SHUTDOWN,
    ParameterProtocol,
    Snapshot,
)

NAMES = ProtocolNames()
TAKE, LABEL, READY = NAMES.take_image, NAMES.label, NAMES.robot_ready


# ---------------------------------------------------------------------------- harness
class Arm:
    """The arm (arm.ArmController) on the fake clock: one step per tick of the detector's sleep,
    a new request once a cycle is over, for ``cycles`` cycles. It knows how many faces each
    cycle's scene holds (the test's truth, from the fake camera), so it knows when a cycle ends;
    a label 0 also ends a cycle (no cube, or no image)."""

    def __init__(self, store, clock, cycles, names=NAMES, move_time=0.3, **kwargs):
        self.controller = ArmController(store, names=names, move_time=move_time, clock=clock, sleep=clock.sleep,
                                        no_cube_grace=0.0, **kwargs)
        self.cycles = cycles
        self.counts = {}  # cycle number -> faces in its scene, set by the fake camera
        self.history = []  # the ArmCycles requested
        self.controller.reset()  # the course's controller resets everything at start-up
        clock.on_tick.append(self.tick)
        self.request()

    @property
    def received(self):
        """One list of labels per cycle."""
        return [cycle.labels for cycle in self.history]

    def request(self):
        number = self.controller.requests + 1
        self.history.append(self.controller.request(lambda: self.counts.get(number)))

    def tick(self):
        if self.controller.step() and len(self.history) < self.cycles:
            self.request()


class FakeCamera:
    """grab_and_detect: returns the next scene's faces, or raises the next scripted error."""

    def __init__(self, scenes, arm=None):
        self.scenes = list(scenes)
        self.calls = 0
        self.arm = arm

    def __call__(self):
        self.calls += 1
        item = self.scenes.pop(0)
        if isinstance(item, Exception):
            raise item
        if self.arm is not None:
            self.arm.counts[self.arm.controller.requests] = len(item)
        return Snapshot([face(c) for c in item], summary="fake, 1.0 ms")


def make(store=None, scenes=(), cycles=1, names=NAMES, shutdown_after=600.0, **kwargs):
    store = store if store is not None else DictParamStore()
    clock = FakeClock()
    arm = Arm(store, clock, cycles, names=names,
              **{k: kwargs.pop(k) for k in ("ready_value", "take_value", "move_time") if k in kwargs})
    camera = FakeCamera(scenes, arm)
    published = []
    protocol = ParameterProtocol(
        store, camera, published.append, names=names, sleep=clock.sleep, clock=clock,
        is_shutdown=lambda: clock.now > shutdown_after, **kwargs,
    )
    return SimpleNamespace(store=store, clock=clock, arm=arm, camera=camera, published=published,
                           protocol=protocol)


# ---------------------------------------------------------------------------- cycles
def test_three_cycles_hand_over_every_label_in_order():
    scenes = [[2, 1], [1], [1, 2, 2, 1]]
    w = make(scenes=scenes, cycles=3)
    assert w.protocol.run(max_cycles=3) == 3
    assert w.arm.received == scenes
    assert [[d.class_id for d in s.detections] for s in w.published] == scenes
    assert w.protocol.last_result.status == DONE and w.protocol.last_result.delivered == 4
    assert w.store.values[TAKE] is False
    assert w.store.values[READY] is True  # the controller's last answer


def test_write_order_label_before_robot_ready_false():
    w = make(scenes=[[2, 1]])
    w.protocol.run(max_cycles=1)
    detector_writes = [(n, v) for n, v in w.store.writes if (n, v) in
                       {(TAKE, False), (LABEL, 1), (LABEL, 2), (READY, False)}]
    assert detector_writes == [(TAKE, False), (LABEL, 2), (READY, False), (LABEL, 1), (READY, False)]
    assert all(isinstance(v, int) and not isinstance(v, bool) for n, v in w.store.writes if n == LABEL)


def test_polls_at_rate():
    w = make(scenes=[[1]], rate=1.0)  # the course's controller polls at 1 Hz
    w.protocol.run(max_cycles=1)
    # The fake arm sees RobotReady false at the first tick (1 s), is done 0.3 s later, which the
    # next tick (2 s) reports; the detector sees it at once.
    assert w.clock.now == pytest.approx(2.0)
    w = make(scenes=[[1]], rate=20.0)
    w.protocol.run(max_cycles=1)
    assert w.clock.now == pytest.approx(0.05 + 0.3, abs=0.051)


def test_zero_faces_sets_label_0_and_leaves_robot_ready_alone():
    w = make(scenes=[[], [2]], cycles=2)
    assert w.protocol.run(max_cycles=1) == 1
    assert w.protocol.last_result.status == NO_FACES
    assert w.store.values[LABEL] == 0
    assert (READY, False) not in w.store.writes
    assert [list(s.detections) for s in w.published] == [[]]  # the empty list is published
    # ... and the next takeImage works
    assert w.protocol.run(max_cycles=1) == 1
    assert w.arm.received == [[], [2]]
    assert w.protocol.last_result.status == DONE


def test_zero_faces_is_logged_once(caplog):
    w = make(scenes=[[]])
    with caplog.at_level(logging.INFO, logger="cube_detect.protocol"):
        w.protocol.run(max_cycles=1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["cycle 1: no cube faces found; fake, 1.0 ms; /label := 0, /RobotReady untouched"]


def test_camera_error_retried_with_backoff_then_success():
    w = make(scenes=[CameraError("/get_image: service not available"), ImageError("empty"), [1, 2]],
             retry_delay=0.5, camera_retries=2)
    w.protocol.run(max_cycles=1)
    assert w.camera.calls == 3
    assert w.arm.received == [[1, 2]]
    assert w.protocol.last_result.status == DONE
    assert w.clock.now >= 0.5 + 1.0  # doubling back-off


def test_camera_error_gives_up_label_0_nothing_published_and_recovers(caplog):
    errors = [ImageError("camera returned an empty image (is the camera enabled?)")] * 3
    w = make(scenes=errors + [[2]], cycles=2, camera_retries=2, retry_delay=0.1)
    with caplog.at_level(logging.WARNING, logger="cube_detect.protocol"):
        w.protocol.run(max_cycles=1)
    result = w.protocol.last_result
    assert result.status == CAMERA_ERROR and "empty image" in result.error and "3 attempts" in result.error
    assert w.camera.calls == 3
    assert w.store.values[LABEL] == 0 and (READY, False) not in w.store.writes
    assert w.published == []
    errors_logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors_logged == ["cycle 1: no image, no labels: camera returned an empty image (is the camera "
                             "enabled?) (after 3 attempts); /label := 0, /RobotReady untouched"]
    w.protocol.run(max_cycles=1)
    assert w.arm.received == [[], [2]]


def test_unexpected_exception_never_kills_the_loop():
    w = make(scenes=[RuntimeError("boom")] * 2 + [[1]], cycles=2, camera_retries=1, retry_delay=0.1)
    w.protocol.run(max_cycles=2)
    assert w.arm.received == [[], [1]]


def test_no_retries():
    w = make(scenes=[CameraError("down"), [1]], camera_retries=0)
    w.protocol.run(max_cycles=1)
    assert w.camera.calls == 1 and w.protocol.last_result.status == CAMERA_ERROR
    assert "after 1 attempt)" in w.protocol.last_result.error


def test_string_valued_parameters_from_rosparam_set():
    w = make(scenes=[[2, 1], [1]], cycles=2, ready_value="true", take_value="True")
    w.protocol.run(max_cycles=2)
    assert w.arm.received == [[2, 1], [1]]
    w = make(scenes=[[1]], ready_value=1, take_value="1")
    w.protocol.run(max_cycles=1)
    assert w.arm.received == [[1]]


def test_alternate_names():
    names = ProtocolNames(take_image="/cell2/takeImage", label="/cell2/label", robot_ready="/robotReady")
    w = make(scenes=[[1, 2]], names=names)
    w.protocol.run(max_cycles=1)
    assert w.arm.received == [[1, 2]]
    assert READY not in w.store.values and w.store.values["/robotReady"] is True


def test_junk_value_logged_once_and_read_as_false(caplog):
    store = DictParamStore()
    w = make(store=store, scenes=[[1]], shutdown_after=5.0)
    store.set(TAKE, "maybe")
    with caplog.at_level(logging.WARNING, logger="cube_detect.protocol"):
        assert w.protocol.run() == 0  # never true: nothing happens until shutdown
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["parameter /takeImage: 'maybe' is not a flag (expected true/false, 1/0, "
                        "or -1 = not set); read as false"]


def test_missing_parameters_read_as_false():
    store = DictParamStore()
    clock = FakeClock()
    protocol = ParameterProtocol(store, lambda: [], sleep=clock.sleep, clock=clock,
                                 is_shutdown=lambda: clock.now > 2.0)
    assert protocol.run() == 0
    assert store.writes == []  # the detector never writes until asked


# ---------------------------------------------------------------------------- controller misbehaviour
def test_controller_reset_mid_cycle_then_new_take_image_preempts():
    w = make(scenes=[[2, 1, 1], [2]], cycles=2)
    arm = w.arm

    def restart_after_first_label():
        if arm.received[0] and arm.controller.requests == 1 and arm.controller.moving_until is not None:
            # The controller crashes after taking the first label and restarts.
            arm.controller.reset()
            arm.request()

    w.clock.on_tick.insert(0, restart_after_first_label)
    assert w.protocol.run(max_cycles=1) == 1
    assert w.protocol.last_result.status == PREEMPTED
    assert w.protocol.last_result.delivered == 0
    w.protocol.run(max_cycles=1)
    assert w.protocol.last_result.status == DONE
    assert arm.received == [[2], [2]]


def test_reset_without_new_request_times_out_with_robot_ready_timeout(caplog):
    w = make(scenes=[[1, 2], [2]], cycles=2, robot_ready_timeout=3.0)
    arm = w.arm

    def vanish():
        if arm.received[0] and arm.controller.requests == 1:
            w.clock.on_tick.remove(arm.tick)  # the controller dies after the first label
            w.clock.on_tick.remove(vanish)
            arm.controller.reset()

    w.clock.on_tick.insert(0, vanish)
    with caplog.at_level(logging.WARNING, logger="cube_detect.protocol"):
        w.protocol.run(max_cycles=1)
    assert w.protocol.last_result.status == ROBOT_TIMEOUT
    assert 3.0 <= w.clock.now < 3.2
    assert any("/RobotReady still not true after 3.0 s (cube 1/2)" in r.getMessage() for r in caplog.records)
    # a new controller asks again: the node serves it
    w.clock.on_tick.append(arm.tick)
    arm.request()
    w.protocol.run(max_cycles=1)
    assert w.protocol.last_result.status == DONE and arm.received[-1] == [2]


def test_waits_forever_by_default_logging_every_few_seconds_and_stops_on_shutdown(caplog):
    w = make(scenes=[[1]], shutdown_after=12.0, wait_log_period=5.0)
    w.clock.on_tick.remove(w.arm.tick)
    w.store.set(TAKE, True)
    with caplog.at_level(logging.INFO, logger="cube_detect.protocol"):
        assert w.protocol.run() == 1
    assert w.protocol.last_result.status == SHUTDOWN
    waits = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waits) == 2  # one warning with the handshake's contract (test_handshake.py), then info lines
    assert waits[0].startswith("cycle 1: /RobotReady still not true after 5 s (cube 1/1, /label = 1): still waiting.")
    assert waits[1] == "cycle 1: waiting for /RobotReady true (cube 1/1, label 1) for 10 s"
    assert w.clock.now == pytest.approx(12.0, abs=0.06)  # stops within one poll period


def test_shutdown_while_waiting_for_take_image():
    w = make(scenes=[], shutdown_after=1.0)
    w.store.set(TAKE, False)
    assert w.protocol.run() == 0
    assert w.camera.calls == 0


def test_shutdown_during_camera_backoff_leaves_label_alone():
    w = make(scenes=[CameraError("down")] * 3, retry_delay=5.0, shutdown_after=2.0)
    w.protocol.run()
    assert w.protocol.last_result.status == SHUTDOWN
    assert w.store.values[LABEL] == -1
    assert w.clock.now < 2.2


def test_parameter_server_error_is_retried():
    class FlakyStore(DictParamStore):
        fail = 2

        def get(self, name, default=None):
            if self.fail and name == TAKE:  # the detector's reads (the arm never reads /takeImage)
                self.fail -= 1
                raise ConnectionRefusedError("master unreachable")
            return super().get(name, default)

    w = make(store=FlakyStore(), scenes=[[1]])
    assert w.protocol.run(max_cycles=1) == 1
    assert w.arm.received == [[1]]


def test_plain_list_from_grab_and_detect():
    store = DictParamStore({TAKE: True})
    clock = FakeClock()
    protocol = ParameterProtocol(store, lambda: [], sleep=clock.sleep, clock=clock)
    assert protocol.run(max_cycles=1) == 1
    assert protocol.last_result.status == NO_FACES and store.values[LABEL] == 0


def test_invalid_settings():
    with pytest.raises(ValueError, match="rate"):
        ParameterProtocol(DictParamStore(), list, rate=0)
    with pytest.raises(ValueError, match="camera_retries"):
        ParameterProtocol(DictParamStore(), list, camera_retries=-1)


def test_states_reported_on_change():
    states = []
    w = make(scenes=[[2, 1], []], cycles=2, on_state=states.append)
    w.protocol.run(max_cycles=2)
    assert states == ["waiting_take_image", "detecting", "waiting_robot_ready 1/2", "waiting_robot_ready 2/2",
                      "waiting_take_image", "detecting", "stopped"]
    assert w.protocol.state == "stopped"


def test_arm_and_detector_in_real_time():
    """Both sides as they run in the nodes: two threads, real time, fast polling."""
    store = DictParamStore()
    scenes = [[2, 1], [], [1]]
    stop = threading.Event()
    protocol = ParameterProtocol(store, FakeCamera(list(scenes)), rate=200.0, is_shutdown=stop.is_set)
    detector = threading.Thread(target=protocol.run, daemon=True)
    detector.start()
    arm = ArmController(store, rate=200.0, timeout=5.0, no_cube_grace=0.1)
    arm.reset()
    try:
        cycles = [arm.run_cycle() if scene == [] else arm.run_cycle(lambda n=len(scene): n) for scene in scenes]
    finally:
        stop.set()
        detector.join(5)
    assert [(c.status, c.labels) for c in cycles] == [(DONE, [2, 1]), (NO_CUBE, []), (DONE, [1])]


class StateTimes:
    """The detector's states with the time each was entered (real clock)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.seen = []

    def __call__(self, state):
        with self.cond:
            self.seen.append((time.monotonic(), state))
            self.cond.notify_all()

    def wait(self, state, after=0.0, timeout=5.0):
        """Time at which ``state`` was entered after ``after``."""
        with self.cond:
            hit = lambda: next((t for t, s in self.seen if s == state and t >= after), None)
            assert self.cond.wait_for(hit, timeout), f"never {state!r}: {self.seen}"
            return hit()


def detector_in_a_thread(store, scenes, rate, **kwargs):
    states, stop = StateTimes(), threading.Event()
    protocol = ParameterProtocol(store, FakeCamera(list(scenes)), rate=rate, is_shutdown=stop.is_set,
                                 on_state=states, **kwargs)
    thread = threading.Thread(target=protocol.run, daemon=True)
    thread.start()
    states.wait("waiting_take_image")
    return protocol, states, stop, thread


def test_watched_store_takeImage_and_RobotReady_seen_at_once_with_a_1_hz_safety_net():
    store = WatchedDictParamStore({TAKE: -1, LABEL: -1, READY: -1})
    protocol, states, stop, thread = detector_in_a_thread(store, [[2, 1]], rate=1.0)
    try:
        assert store.watched == [TAKE, READY]
        time.sleep(0.05)
        asked = time.monotonic()
        store.set(TAKE, True)
        assert states.wait("detecting", asked) - asked < 0.2  # not the next 1 s poll
        for cube in (1, 2):
            waiting = states.wait(f"waiting_robot_ready {cube}/2", asked)
            assert store.values[READY] is False
            store.set(READY, True)
            asked = time.monotonic()
        assert states.wait("waiting_take_image", waiting) - asked < 0.2
        assert time.monotonic() - waiting < 0.5
    finally:
        stop.set()
        protocol.wake()
        thread.join(2)
    assert not thread.is_alive()  # wake() ended the 1 s wait
    assert [v for n, v in store.writes if n in (LABEL, READY)] == [2, False, True, 1, False, True]


def test_safety_net_poll_finds_a_change_that_was_never_pushed():
    store = WatchedDictParamStore({TAKE: -1})
    protocol, states, stop, thread = detector_in_a_thread(store, [[]], rate=5.0)
    try:
        store.silent = True  # e.g. the master restarted and forgot the subscription
        seen = store.updates.count
        asked = time.monotonic()
        store.set(TAKE, True)
        noticed = states.wait("detecting", asked) - asked
        assert store.updates.count == seen  # no push: the 0.2 s poll found it
        assert noticed < 1.0
    finally:
        stop.set()
        protocol.wake()
        thread.join(2)


def test_robot_ready_timeout_and_wait_logs_are_on_time_between_safety_net_polls(caplog):
    store = WatchedDictParamStore({TAKE: True})
    stop = threading.Event()
    protocol = ParameterProtocol(store, FakeCamera([[1]]), rate=0.2, robot_ready_timeout=0.3,
                                 wait_log_period=0.1, is_shutdown=stop.is_set)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="cube_detect.protocol"):
        assert protocol.run(max_cycles=1) == 1
    assert protocol.last_result.status == ROBOT_TIMEOUT
    assert 0.3 <= time.monotonic() - started < 2.0  # not the 5 s safety-net period
    lines = [r.getMessage() for r in caplog.records]
    assert any("still waiting" in line for line in lines)  # at 0.1 s: the handshake warning
    assert any("waiting for /RobotReady true" in line for line in lines)  # at 0.2 s
