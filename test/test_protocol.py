"""protocol: parse_bool and the takeImage / label / RobotReady state machine, on a fake clock."""

import logging
from types import SimpleNamespace

import pytest

from cube_detect.errors import ImageError
from cube_detect.protocol import (
    CAMERA_ERROR,
    DONE,
    NO_FACES,
    PREEMPTED,
    ROBOT_TIMEOUT,
    SHUTDOWN,
    CameraError,
    DictParamStore,
    ParameterProtocol,
    ProtocolNames,
    Snapshot,
    is_reset,
    parse_bool,
)

NAMES = ProtocolNames()
TAKE, LABEL, READY = NAMES.take_image, NAMES.label, NAMES.robot_ready


# ---------------------------------------------------------------------------- parse_bool
@pytest.mark.parametrize("value", [True, 1, 1.0, "true", "True", "TRUE", " true ", "1", "1.0", "yes", "on"])
def test_parse_bool_true(value):
    assert parse_bool(value, "/takeImage") is True


@pytest.mark.parametrize("value", [False, 0, 0.0, -1, -1.0, "false", "False", "0", "-1", "-1.0", "no", "off"])
def test_parse_bool_false(value):
    assert parse_bool(value, "/takeImage") is False


def test_parse_bool_not_set():
    assert parse_bool(None) is None


@pytest.mark.parametrize("value", ["maybe", "", 2, 0.5, -2, float("nan"), [1], {"a": 1}])
def test_parse_bool_junk_names_the_parameter(value):
    with pytest.raises(ValueError, match=r"parameter /RobotReady: .* is not a flag"):
        parse_bool(value, "/RobotReady")


@pytest.mark.parametrize("value,expected", [(-1, True), (-1.0, True), ("-1", True), (" -1 ", True),
                                            (0, False), (False, False), (True, False), ("x", False),
                                            (None, False)])
def test_is_reset(value, expected):
    assert is_reset(value) is expected


# ---------------------------------------------------------------------------- harness
class FakeClock:
    """Time only moves when the protocol sleeps; each sleep lets the fake controller act."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = 0
        self.on_tick = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds
        self.sleeps += 1
        for hook in list(self.on_tick):
            hook()


def face(class_id, score=0.9):
    return SimpleNamespace(class_id=class_id, label={1: "one", 2: "two"}[class_id], score=score)


class FakeController:
    """The arm: asks for an image, moves each cube (move_time s), asks again for `cycles` cycles.

    It knows how many faces each scene holds (the test's truth), so it knows when a cycle ends;
    a label 0 also ends a cycle (no cube, or no image).
    """

    def __init__(self, store, clock, cycles, move_time=0.3, names=NAMES, ready_value=True, take_value=True):
        self.store, self.clock, self.names = store, clock, names
        self.cycles, self.move_time = cycles, move_time
        self.ready_value, self.take_value = ready_value, take_value
        self.received = []  # one list of labels per cycle
        self.expect_counts = []  # faces in each cycle's scene, pushed by the fake camera
        self.moving_until = None
        self.started = 0
        for name in (names.take_image, names.label, names.robot_ready):
            store.set(name, -1)  # the course's controller resets everything at start-up
        clock.on_tick.append(self.tick)
        self.request()

    def request(self):
        self.store.set(self.names.label, -1)
        self.store.set(self.names.take_image, self.take_value)
        self.received.append([])
        self.started += 1

    def cycle_over(self):
        got = self.received[-1]
        if self.store.values.get(self.names.label) == 0:
            return True
        return bool(self.expect_counts) and len(self.expect_counts) >= self.started and \
            len(got) == self.expect_counts[self.started - 1] and self.moving_until is None

    def tick(self):
        ready = self.store.values.get(self.names.robot_ready)
        if self.moving_until is not None:
            if self.clock() >= self.moving_until:
                self.moving_until = None
                self.store.set(self.names.robot_ready, self.ready_value)
            return
        if ready is False:
            self.received[-1].append(self.store.values.get(self.names.label))
            self.moving_until = self.clock() + self.move_time
            return
        if self.store.values.get(self.names.take_image) is False and self.cycle_over() and self.started < self.cycles:
            self.request()


class FakeCamera:
    """grab_and_detect: returns the next scene's faces, or raises the next scripted error."""

    def __init__(self, scenes, controller=None):
        self.scenes = list(scenes)
        self.calls = 0
        self.controller = controller

    def __call__(self):
        self.calls += 1
        item = self.scenes.pop(0)
        if isinstance(item, Exception):
            raise item
        if self.controller is not None:
            self.controller.expect_counts.append(len(item))
        return Snapshot([face(c) for c in item], summary="fake, 1.0 ms")


def make(store=None, scenes=(), cycles=1, names=NAMES, shutdown_after=600.0, **kwargs):
    store = store if store is not None else DictParamStore()
    clock = FakeClock()
    controller = FakeController(store, clock, cycles, names=names,
                                **{k: kwargs.pop(k) for k in ("ready_value", "take_value", "move_time") if k in kwargs})
    camera = FakeCamera(scenes, controller)
    published = []
    protocol = ParameterProtocol(
        store, camera, published.append, names=names, sleep=clock.sleep, clock=clock,
        is_shutdown=lambda: clock.now > shutdown_after, **kwargs,
    )
    return SimpleNamespace(store=store, clock=clock, controller=controller, camera=camera,
                           published=published, protocol=protocol)


# ---------------------------------------------------------------------------- cycles
def test_three_cycles_hand_over_every_label_in_order():
    scenes = [[2, 1], [1], [1, 2, 2, 1]]
    w = make(scenes=scenes, cycles=3)
    assert w.protocol.run(max_cycles=3) == 3
    assert w.controller.received == scenes
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
    assert w.controller.received == [[], [2]]
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
    assert w.controller.received == [[1, 2]]
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
    assert w.controller.received == [[], [2]]


def test_unexpected_exception_never_kills_the_loop():
    w = make(scenes=[RuntimeError("boom")] * 2 + [[1]], cycles=2, camera_retries=1, retry_delay=0.1)
    w.protocol.run(max_cycles=2)
    assert w.controller.received == [[], [1]]


def test_no_retries():
    w = make(scenes=[CameraError("down"), [1]], camera_retries=0)
    w.protocol.run(max_cycles=1)
    assert w.camera.calls == 1 and w.protocol.last_result.status == CAMERA_ERROR
    assert "after 1 attempt)" in w.protocol.last_result.error


def test_string_valued_parameters_from_rosparam_set():
    w = make(scenes=[[2, 1], [1]], cycles=2, ready_value="true", take_value="True")
    w.protocol.run(max_cycles=2)
    assert w.controller.received == [[2, 1], [1]]
    w = make(scenes=[[1]], ready_value=1, take_value="1")
    w.protocol.run(max_cycles=1)
    assert w.controller.received == [[1]]


def test_alternate_names():
    names = ProtocolNames(take_image="/cell2/takeImage", label="/cell2/label", robot_ready="/robotReady")
    w = make(scenes=[[1, 2]], names=names)
    w.protocol.run(max_cycles=1)
    assert w.controller.received == [[1, 2]]
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
    controller = w.controller

    def restart_after_first_label():
        if controller.received[0] and controller.started == 1 and controller.moving_until is not None:
            # The controller crashes after taking the first label and restarts.
            controller.moving_until = None
            for name in (TAKE, LABEL, READY):
                w.store.set(name, -1)
            controller.expect_counts[0] = 1
            controller.request()

    w.clock.on_tick.insert(0, restart_after_first_label)
    assert w.protocol.run(max_cycles=1) == 1
    assert w.protocol.last_result.status == PREEMPTED
    assert w.protocol.last_result.delivered == 0
    w.protocol.run(max_cycles=1)
    assert w.protocol.last_result.status == DONE
    assert controller.received == [[2], [2]]


def test_reset_without_new_request_times_out_with_robot_ready_timeout(caplog):
    w = make(scenes=[[1, 2], [2]], cycles=2, robot_ready_timeout=3.0)
    controller = w.controller

    def vanish():
        if controller.received[0] and controller.started == 1:
            w.clock.on_tick.remove(controller.tick)  # the controller dies after the first label
            w.clock.on_tick.remove(vanish)
            for name in (TAKE, LABEL, READY):
                w.store.set(name, -1)

    w.clock.on_tick.insert(0, vanish)
    with caplog.at_level(logging.WARNING, logger="cube_detect.protocol"):
        w.protocol.run(max_cycles=1)
    assert w.protocol.last_result.status == ROBOT_TIMEOUT
    assert 3.0 <= w.clock.now < 3.2
    assert any("/RobotReady still not true after 3.0 s (cube 1/2)" in r.getMessage() for r in caplog.records)
    # a new controller asks again: the node serves it
    w.store.set(TAKE, True)
    w.clock.on_tick.append(controller.tick)
    controller.moving_until = None
    controller.received.append([])
    controller.started += 1
    w.protocol.run(max_cycles=1)
    assert w.protocol.last_result.status == DONE and controller.received[-1] == [2]


def test_waits_forever_by_default_logging_every_few_seconds_and_stops_on_shutdown(caplog):
    w = make(scenes=[[1]], shutdown_after=12.0, wait_log_period=5.0)
    w.clock.on_tick.remove(w.controller.tick)
    w.store.set(TAKE, True)
    with caplog.at_level(logging.INFO, logger="cube_detect.protocol"):
        assert w.protocol.run() == 1
    assert w.protocol.last_result.status == SHUTDOWN
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert waits == ["cycle 1: waiting for /RobotReady true (cube 1/1, label 1) for 5 s",
                     "cycle 1: waiting for /RobotReady true (cube 1/1, label 1) for 10 s"]
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
            if self.fail:
                self.fail -= 1
                raise ConnectionRefusedError("master unreachable")
            return super().get(name, default)

    w = make(store=FlakyStore(), scenes=[[1]])
    assert w.protocol.run(max_cycles=1) == 1
    assert w.controller.received == [[1]]


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
