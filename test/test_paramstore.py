"""paramstore: parse_bool, is_reset, wait_for, and the waits on a plain and on a watched store."""

import pytest
from fakes import DictParamStore, FakeClock, WatchedDictParamStore, event_driven

from cube_detect.paramstore import (
    ParamUpdates,
    ParamWaiter,
    ProtocolNames,
    WaitTimeout,
    WatchedParamStore,
    is_reset,
    parse_bool,
    wait_for,
)

NAMES = ProtocolNames()
TAKE, LABEL = NAMES.take_image, NAMES.label


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

# ---------------------------------------------------------------------------- wait_for
def test_wait_for_returns_the_first_truthy_value():
    clock = FakeClock()
    values = iter([0, None, "", "got it"])
    assert wait_for(lambda: next(values), 1.0, period=0.1, clock=clock, sleep=clock.sleep) == "got it"
    assert clock.now == pytest.approx(0.3)


def test_wait_for_names_what_it_waited_for():
    clock = FakeClock()
    with pytest.raises(WaitTimeout, match=r"^timed out after 2 s waiting for /RobotReady false$"):
        wait_for(lambda: False, 2.0, "/RobotReady false", clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(2.0)
    calls = []
    with pytest.raises(WaitTimeout, match="shutting down while waiting for x"):
        wait_for(lambda: calls.append(1), 5.0, "x", clock=clock, sleep=clock.sleep, is_shutdown=lambda: True)
    assert calls == [1]  # always asked at least once

# ---------------------------------------------------------------------------- event-driven waits
def test_param_updates_never_lose_a_wake_up():
    updates = ParamUpdates()
    seen = updates.count
    updates.notify()  # lands between the reads and the wait
    assert updates.wait(seen, timeout=10.0) is True  # at once
    assert updates.wait(updates.count, timeout=0.01) is False


def test_waiter_polls_a_plain_store_and_waits_on_a_watched_one():
    clock = FakeClock()
    plain = ParamWaiter(DictParamStore(), 0.5, sleep=clock.sleep, clock=clock)
    assert not event_driven(plain)
    plain.idle(plain.mark())
    assert clock.now == 0.5
    store = WatchedDictParamStore()
    assert isinstance(store, WatchedParamStore) and not isinstance(DictParamStore(), WatchedParamStore)
    waiter = ParamWaiter(store, 30.0)
    waiter.watch([TAKE])
    seen = waiter.mark()
    store.set(TAKE, True)
    store.set(LABEL, 1)  # not watched: no update
    assert store.updates.count == seen + 1
    waiter.idle(seen)  # returns at once: an update came after `seen`
    with pytest.raises(ValueError, match="period"):
        ParamWaiter(store, 0.0)
