"""Surviving a restart of the ROS master (issue 15, item 2).

rospy registers a node's topics, services and parameters once, at start. When roscore is
restarted (students restart the robot's master all the time), the new master knows nothing of
the node: ``rosnode list`` shows only /rosout, its topics and services are gone, yet the node
keeps polling parameters, a silent zombie. rospy has no way to register again.

``MasterWatch`` asks the master every second for its process id and whether it still knows
this node. When another master answers (another pid, or this node unknown once it was known:
roscore was restarted), the node restarts itself in place
(``restart_in_place``): one log line says so, its settings are written back to the new master
(roslaunch set them on the old one only), and the process re-executes its own command line
(``os.execv``: the same process id, so roslaunch, which waits on that process, keeps tracking
it; no ``respawn`` needed, and a node that fails for a reason of its own is not restarted in a
loop). A master that is only unreachable is waited for (one line). If another node has taken
this node's name on the new master, this one exits (one line).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from typing import Any, Callable, ContextManager, Optional

import rosgraph
import rospy


def _master_uri() -> str:
    try:
        return rosgraph.get_master_uri()
    except Exception:  # only for the log line
        return "(unknown)"


class MasterWatch:
    """A daemon thread: ``on_restart()`` once another master answers than the one this node
    registered with.

    Create it right after ``rospy.init_node`` (it notes which master answers then: its pid),
    ``start()`` it once the node has made its topics and services.
    """

    def __init__(self, what: str, period: float = 1.0, is_shutdown: Callable[[], bool] = rospy.is_shutdown):
        self.what, self.period, self.is_shutdown = what, float(period), is_shutdown
        self.name = rospy.get_name()
        self.master = rosgraph.Master(self.name)
        self.master_pid: Optional[int] = self._pid()
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def _pid(self) -> Optional[int]:
        try:
            return int(self.master.getPid())
        except Exception:  # not reachable now
            return None

    def start(self, on_restart: Callable[[], None], on_replaced: Callable[[str], None]) -> MasterWatch:
        self.thread = threading.Thread(target=self.run, args=(on_restart, on_replaced), name="master_watch",
                                       daemon=True)
        self.thread.start()
        return self

    def check(self) -> str:
        """``ok``, ``unreachable``, ``restarted``, ``unknown`` (not registered yet) or the URI of
        another node that holds this node's name."""
        try:
            pid = int(self.master.getPid())
        except Exception:  # socket errors: the master is down
            return "unreachable"
        try:
            uri = self.master.lookupNode(self.name)
        except rosgraph.MasterError:  # the master answers, and does not know this node
            return "restarted" if self.master_pid is not None and pid != self.master_pid else "unknown"
        except Exception:  # went down between the two calls
            return "unreachable"
        if self.master_pid is None:
            self.master_pid = pid
        own = rospy.get_node_uri()
        if own and uri != own:
            return uri
        return "ok"

    def run(self, on_restart: Callable[[], None], on_replaced: Callable[[str], None]) -> None:
        known = False  # seen registered once: from then on, "unknown node" means a restart too
        unreachable = False
        while not self.stop.wait(self.period) and not self.is_shutdown():
            state = self.check()
            if state == "unreachable":
                if not unreachable:
                    rospy.logwarn("%s: the ROS master at %s is unreachable: waiting for it", self.what, _master_uri())
                unreachable = True
                continue
            if state == "restarted" or (state == "unknown" and known):
                on_restart()
                return
            if state not in ("ok", "unknown"):
                on_replaced(state)
                return
            if unreachable:
                rospy.loginfo("%s: the ROS master at %s answers again", self.what, _master_uri())
            unreachable = False
            known = known or state == "ok"


def write_back_settings(settings: Any) -> None:
    """The node's settings as private parameters of the (new) master, where none is set."""
    for item in dataclasses.fields(settings):
        name = rospy.resolve_name("~" + item.name)
        try:
            if not rospy.has_param(name):
                rospy.set_param(name, getattr(settings, item.name))
        except Exception as exc:  # the restarted node then uses the defaults
            rospy.logwarn("could not write %s back to the new master: %s", name, exc)
            return


def restart_in_place(what: str, settings: Any, quiesce: Optional[ContextManager[Any]] = None,
                     before: Callable[[], None] = lambda: None) -> None:
    """One line, the settings back on the new master, then re-execute this process's command line.

    ``quiesce``: a lock held while re-executing (no half-written file); ``before()`` runs first
    (e.g. the capture node's summary line). Exits 3 if the process cannot be re-executed.
    """
    rospy.logerr("%s: the ROS master at %s was restarted (it no longer knows this node): restarting this "
                 "node in place (same command line and settings) to register again", what, _master_uri())
    try:
        before()
    except Exception:  # a log line at most
        pass
    write_back_settings(settings)
    argv = [sys.executable] + list(getattr(sys, "orig_argv", [sys.executable] + sys.argv))[1:]
    with quiesce if quiesce is not None else threading.Lock():
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execv(sys.executable, argv)
        except OSError as exc:
            rospy.logfatal("%s: cannot restart (%s): exiting", what, exc)
            os._exit(3)


def exit_replaced(what: str, uri: str) -> None:
    """Another node took this node's name on a restarted master: this one leaves (exit 0)."""
    rospy.logerr("%s: another node with this name (%s) is registered at the ROS master %s: exiting",
                 what, uri, _master_uri())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
