"""The protocol's parameter store on the ROS parameter server, told of changes by the master.

``watch(names)`` subscribes those parameters with ``rospy.get_param_cached`` (its first access
calls the master's ``subscribeParam`` and puts the value in rospy's parameter cache): from then
on the master calls this node's ``paramUpdate`` for every change, which updates rospy's cache,
whose notifier (``ParamServerCache.set_notifier``, hooked once per process) notifies
``updates``. A protocol waiting on ``updates`` wakes when the master pushes the change, not at
its next poll.

Reads of watched names still ask the master (``getParam``), not the cache. A push only says
"read again": it can be stale when it lands. The master's notification threads look for work
every 0.1 s (rosmaster/threadpool.py), so a push arrives 0-100 ms after the write, and this
node may have written a newer value in between (rospy's ``set_param`` updates the cache when
the call returns; a late push of the controller's older value would then overwrite it).

A restarted master knows no subscriptions: the nodes notice it (``cube_detect.ros.master``,
within a second) and restart in place, which subscribes again; until then the safety-net poll
(``rate``) is what sees changes.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Sequence, Set

import rospy
from rospy.impl.paramserver import get_param_server_cache

from cube_detect.paramstore import ParamUpdates

_stores: weakref.WeakSet[RosParamStore] = weakref.WeakSet()
_hook_lock = threading.Lock()
_hooked = False
_own_write = threading.local()  # set while this thread runs rospy.set_param: not a push


def _related(a: str, b: str) -> bool:
    """Whether an update of ``a`` may change ``b``: the same name, or one a namespace of the other."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _on_cache_update(key: str, _value: Any) -> None:
    """rospy's cache notifier (called under the cache's lock: only notifications here)."""
    if getattr(_own_write, "active", False):
        return
    name = key.rstrip("/") or "/"  # the master sends "/takeImage/"
    for store in list(_stores):
        if any(_related(name, watched) for watched in store.watched):
            store.updates.notify()


def _hook_cache() -> None:
    """Install the notifier on rospy's parameter cache, once, after any notifier already there."""
    global _hooked
    with _hook_lock:
        if _hooked:
            return
        cache = get_param_server_cache()
        previous = cache.notifier

        def notifier(key: str, value: Any) -> None:
            if previous is not None:
                previous(key, value)
            _on_cache_update(key, value)

        cache.set_notifier(notifier)
        _hooked = True


class RosParamStore:
    """``cube_detect.paramstore.WatchedParamStore`` over rospy: get_param / set_param, and
    ``watch(names)`` for the master's pushed updates (see the module's docstring)."""

    def __init__(self) -> None:
        self.updates = ParamUpdates()
        self.watched: Set[str] = set()  # resolved names

    def get(self, name: str, default: Any = None) -> Any:
        resolved = rospy.resolve_name(name)
        if resolved not in self.watched:
            return rospy.get_param(name, default)
        # Not rospy.get_param: it would answer from the cache, which a late push may have made stale.
        code, _msg, value = rospy.get_master().target.getParam(rospy.get_caller_id(), resolved)
        return value if code == 1 else default

    def set(self, name: str, value: Any) -> None:
        _own_write.active = True  # rospy updates its cache of a watched name: no wake-up for that
        try:
            rospy.set_param(name, value)
        finally:
            _own_write.active = False

    def watch(self, names: Sequence[str]) -> None:
        """Subscribe ``names``: every change the master pushes notifies ``updates``."""
        _hook_cache()
        _stores.add(self)
        for name in names:
            # Its first access subscribes (the master's subscribeParam) and caches the value: rospy
            # answers the master's paramUpdate for the names in its cache.
            rospy.get_param_cached(name, None)
            self.watched.add(rospy.resolve_name(name))
