"""Test doubles for the protocol's tests: parameter stores over a dict, a fake clock, a face.

Imported by the tests as ``fakes`` (pytest puts test/ on ``sys.path``: the folder has no
``__init__.py``). Production code never imports this module.
"""

from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from cube_detect.paramstore import ParamUpdates, ParamWaiter


class DictParamStore:
    """A parameter store over a dict; records every write in ``writes``."""

    def __init__(self, values: Optional[Dict[str, Any]] = None):
        self.values: Dict[str, Any] = dict(values or {})
        self.writes: List[Tuple[str, Any]] = []

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value
        self.writes.append((name, value))


class WatchedDictParamStore(DictParamStore):
    """A :class:`DictParamStore` whose every write of a watched name notifies ``updates``
    (a ``paramstore.WatchedParamStore``, as the ROS store is).

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


def event_driven(waiter: ParamWaiter) -> bool:
    """Whether ``waiter`` waits on pushed updates (a watched store) rather than polling."""
    return waiter.updates is not None


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
    """A detection as the protocol sees one: class id, label and score."""
    return SimpleNamespace(class_id=class_id, label={1: "one", 2: "two"}[class_id], score=score)
