"""The protocol's parameter store on the ROS parameter server, told of changes by the master.

``watch(names)`` subscribes those parameters as ``rospy.get_param_cached`` does on its first
access (the master's ``subscribeParam``, then the value put in rospy's parameter cache): from
then on the master calls this node's ``paramUpdate`` for every change, which updates rospy's
cache, whose notifier (``ParamServerCache.set_notifier``, hooked once per process) notifies
``updates``. A protocol waiting on ``updates`` wakes when the master pushes the change, not at
its next poll.

Reads of watched names still ask the master (``getParam``), not the cache. A push only says
"read again": it can be stale when it lands. The master's notification threads look for work
every 0.1 s (rosmaster/threadpool.py), so a push arrives 0-100 ms after the write, and this
node may have written a newer value in between (rospy's ``set_param`` updates the cache when
the call returns; a late push of the controller's older value would then overwrite it).

A restarted master knows no subscriptions: at most every ``SUBSCRIPTION_CHECK_S`` s, on a read
of a watched name, the master's pid is compared with the one subscribed to; a new master gets
the subscriptions again (one log line). Until then the safety-net poll (``rate``) is what sees
changes.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Optional, Sequence, Set

import rospy
from rospy.impl.paramserver import get_param_server_cache

from cube_detect.protocol import ParamUpdates

#: Seconds between checks that the master is still the one the subscriptions were made with.
SUBSCRIPTION_CHECK_S = 1.0

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
    """``cube_detect.protocol.WatchedParamStore`` over rospy: get_param / set_param, and
    ``watch(names)`` for the master's pushed updates (see the module's docstring)."""

    def __init__(self) -> None:
        self.updates = ParamUpdates()
        self.watched: Set[str] = set()  # resolved names
        self.master_pid: Optional[int] = None
        self._next_check = 0.0

    def get(self, name: str, default: Any = None) -> Any:
        resolved = rospy.resolve_name(name)
        if resolved not in self.watched:
            return rospy.get_param(name, default)
        self._check_master()
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
        self.watched.update(rospy.resolve_name(name) for name in names)
        self._subscribe()

    def _subscribe(self) -> None:
        master = rospy.get_master().target
        pid = self._master_pid()  # before: a master that restarts meanwhile is subscribed again at the next check
        for resolved in sorted(self.watched):
            code, msg, value = master.subscribeParam(rospy.get_caller_id(), rospy.core.get_node_uri(), resolved)
            if code != 1:
                raise rospy.ROSException(f"cannot subscribe to parameter {resolved}: {msg}")
            # What get_param_cached does: a cached name is a subscribed one (rospy answers the
            # master's paramUpdate for names in its cache only); {} = not set yet.
            get_param_server_cache().set(resolved, value)
        self.master_pid = pid
        self._next_check = time.monotonic() + SUBSCRIPTION_CHECK_S

    @staticmethod
    def _master_pid() -> int:
        code, msg, pid = rospy.get_master().target.getPid(rospy.get_caller_id())
        if code != 1:
            raise rospy.ROSException(f"master getPid: {msg}")
        return int(pid)

    def _check_master(self) -> None:
        if time.monotonic() < self._next_check:
            return
        pid = self._master_pid()
        self._next_check = time.monotonic() + SUBSCRIPTION_CHECK_S
        if pid != self.master_pid:
            rospy.logwarn("parameters: the master restarted (pid %s, now %s): subscribing to %s again",
                          self.master_pid, pid, ", ".join(sorted(self.watched)))
            self._subscribe()
