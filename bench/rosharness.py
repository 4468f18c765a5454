"""A private ROS graph for the benchmarks and drills: roscore on a free port, detect.launch,
the simulated camera as its own process (so a drill can kill it), and a bench controller that
plays the arm's side of the takeImage / label / RobotReady protocol (``ArmController``'s
parameter writes) as fast as it can: driven by the detector's ``~state`` messages, not polling.

Used by bench/run_bench.py and test/test_bench.py. Everything started here runs in its own
process group and is stopped (SIGINT, then SIGKILL) by ``RosGraph.close()``.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
import xmlrpc.client
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlparse

import numpy as np
import rosgraph
import rosgraph.network
import rospy
from roslib.packages import find_node  # type: ignore[import-untyped]  # (no stubs, not in pyproject's list)
from std_msgs.msg import Bool, String

from bench.procs import Process, free_port
from cube_detect.arm import ArmController
from cube_detect.labels import NAME_TO_ID
from cube_detect.msg import CubeFaces
from cube_detect.paramstore import ProtocolNames, WaitTimeout, wait_for
from cube_detect.protocol import DETECTING, WAITING_ROBOT_READY, WAITING_TAKE_IMAGE
from cube_detect.ros.params import RosParamStore

IDLE = WAITING_TAKE_IMAGE


def log(text: str) -> None:
    print(f"bench: {text}", flush=True)


def percentiles(values, keys=("p50", "p95")) -> dict:
    """{"p50", "p95", "max", "n"} of ``values`` (ms or s), rounded; {"n": 0} when empty."""
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    out = {k: round(float(np.percentile(a, float(k[1:]))), 3) for k in keys}
    out.update(max=round(float(a.max()), 3), n=int(a.size))
    return out


def proc_status_kb(pid: int, field_name: str) -> Optional[int]:
    """VmRSS / VmHWM (kB) of a process from /proc; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def node_executable(node_type: str) -> str:
    """The executable roslaunch would run for cube_detect/``node_type``."""
    found = find_node("cube_detect", node_type)
    if not found:
        raise RuntimeError(f"cube_detect/{node_type} not found: run `make setup` and `source tools/env.sh`")
    return found[0]


class RosGraph:
    """roscore on a free port (or the master already in ROS_MASTER_URI), and what runs on it."""

    def __init__(self, log_dir: Path, use_existing_master: bool = False):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: List[Process] = []
        self.env = dict(os.environ)
        self.env.setdefault("ROS_LOG_DIR", str(self.log_dir / "ros"))
        self.env["PYTHONUNBUFFERED"] = "1"
        self.external_master = use_existing_master
        if not use_existing_master:
            port = free_port()
            self.env["ROS_MASTER_URI"] = f"http://127.0.0.1:{port}/"
            os.environ["ROS_MASTER_URI"] = self.env["ROS_MASTER_URI"]
            os.environ.setdefault("ROS_LOG_DIR", self.env["ROS_LOG_DIR"])
            self.start("roscore", ["roscore", "-p", str(port)])
            self._wait_master(30.0)

    def _wait_master(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if rosgraph.is_master_online():
                return
            time.sleep(0.1)
        raise RuntimeError(f"roscore did not come up within {timeout:g} s; see {self.log_dir}/roscore.log")

    def start(self, name: str, args: List[str]) -> Process:
        proc = Process(name, args, self.log_dir, env=self.env)
        self.processes.append(proc)
        return proc

    def launch(self, name: str, launch_file: str, **args) -> Process:
        return self.start(name, ["roslaunch", "cube_detect", launch_file]
                          + [f"{k}:={v}" for k, v in args.items()])

    def camera(self, name: str = "sim_camera", **params) -> Process:
        argv = [node_executable("sim_camera"), f"__name:={name}"] + [f"_{k}:={v}" for k, v in params.items()]
        return self.start(name, argv)

    def close(self) -> None:
        for proc in reversed(self.processes):  # nodes first, roscore last
            proc.stop()
        self.processes.clear()


def master_push_latency(count: int = 50, name: str = "/bench/push_probe") -> dict:
    """Percentiles (ms) from a ``setParam`` to the master's ``paramUpdate`` reaching a subscriber.

    This node subscribes ``name`` as the detector subscribes ``/takeImage`` (RosParamStore.watch)
    and another caller id writes it (the master pushes to every subscriber but the writer), each
    write at a random moment: rosmaster's notification threads look for work every 0.1 s.
    """
    store = RosParamStore()
    rospy.set_param(name, -1)
    store.watch([name])
    writer = rosgraph.Master("/bench_push_writer")
    pauses = np.random.default_rng(3)
    samples = []
    for value in range(count):
        time.sleep(float(pauses.uniform(0.0, 0.1)))
        seen = store.updates.count
        started = time.monotonic()
        writer.setParam(name, value)
        if store.updates.wait(seen, 2.0):
            samples.append((time.monotonic() - started) * 1e3)
    rospy.delete_param(name)
    return percentiles(samples)


def master_getparam_cost(count: int = 2000, name: str = "/bench/poll_probe") -> dict:
    """What one poll costs: a ``getParam`` as the safety-net poll makes it, ``count`` times in a row;
    microseconds of wall time at the caller and of CPU time in the master process (utime + stime
    of the master's pid, so a master on another machine is not measured: ``None``)."""
    master = rosgraph.Master("/bench_poll_probe")
    master.setParam(name, False)  # a bool, as /takeImage
    pid = int(master.getPid())
    local = rosgraph.network.is_local_address(urlparse(rosgraph.get_master_uri()).hostname or "")
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")

    def cpu_ticks() -> Optional[int]:
        if not local:  # a master on another machine: its pid is not one of ours
            return None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)

    before, started = cpu_ticks(), time.perf_counter()
    for _ in range(count):
        master.getParam(name)
    wall = time.perf_counter() - started
    after = cpu_ticks()
    master.deleteParam(name)
    cpu = None if before is None or after is None else (after - before) * tick_us / count
    return {"calls": count, "wall_us": round(wall * 1e6 / count, 1),
            "master_cpu_us": None if cpu is None else round(cpu, 1)}


def node_pid(node_name: str) -> int:
    """The pid of a running node, from its own XML-RPC API."""
    uri = rosgraph.Master("/bench").lookupNode(node_name)
    answer: Any = xmlrpc.client.ServerProxy(uri).getPid("/bench")
    code, msg, pid = answer  # [status code, status message, pid]
    if code != 1:
        raise RuntimeError(f"{node_name}: getPid: {msg}")
    return int(pid)


@dataclass
class Cycle:
    """One protocol cycle as the bench controller saw it."""

    status: str  # done | no_faces | camera_error | timeout | abandoned
    truth: List[str] = field(default_factory=list)  # the camera's true sorted labels
    faces: List[str] = field(default_factory=list)  # labels in the ~faces message
    handed: List[int] = field(default_factory=list)  # /label values handed over, in order
    cycle_ms: Optional[float] = None  # takeImage set -> ~faces arrival
    seen_ms: Optional[float] = None  # takeImage set -> ~state "detecting" (the master's push or the poll)
    camera_ms: Optional[float] = None  # takeImage set -> image stamp (noticing + camera call)
    inference_ms: Optional[float] = None  # the node's own figure (pre + model + post)
    protocol_ms: Optional[float] = None  # takeImage set -> detector idle again, every cube moved
    started: float = 0.0  # time.monotonic() of takeImage
    note: str = ""

    @property
    def completed(self) -> bool:
        return self.status in ("done", "no_faces")

    @property
    def correct(self) -> bool:
        return (self.status in ("done", "no_faces") and self.faces == self.truth
                and self.handed == [NAME_TO_ID[n] for n in self.truth])

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(completed=self.completed, correct=self.correct)
        return d


class BenchController:
    """The arm's side of the protocol, driven by the detector's latched ~state and ~faces.

    Faster than polling parameters: each ``waiting_robot_ready i/n`` state message is answered at
    once (read /label, set /RobotReady true: ``ArmController.read_label`` and ``cube_moved``),
    so what is measured is the detector's own time.
    """

    def __init__(self, node: str = "/detector", names: ProtocolNames = ProtocolNames(), camera: str = "/sim_camera"):
        self.node, self.names = node, names
        self.arm = ArmController(RosParamStore(), names=names)
        self.truth_param = camera + "/last_labels"
        self.cond = threading.Condition()
        self.states: List[Tuple[float, str]] = []  # (monotonic, state)
        self.faces: List[Tuple[float, Any]] = []  # (monotonic, CubeFaces)
        self.ready_at: Optional[float] = None
        self._subs = [
            rospy.Subscriber(node + "/state", String, self._on_state, queue_size=None),
            rospy.Subscriber(node + "/faces", CubeFaces, self._on_faces, queue_size=None),
            rospy.Subscriber(node + "/ready", Bool, self._on_ready, queue_size=None),
        ]

    def close(self) -> None:
        for sub in self._subs:
            sub.unregister()

    def _on_state(self, msg) -> None:
        with self.cond:
            self.states.append((time.monotonic(), msg.data))
            self.cond.notify_all()

    def _on_faces(self, msg) -> None:
        with self.cond:
            self.faces.append((time.monotonic(), msg))
            self.cond.notify_all()

    def _on_ready(self, msg) -> None:
        with self.cond:
            if msg.data and self.ready_at is None:
                self.ready_at = time.monotonic()
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """predicate() (called under the lock, at every message) once truthy, or None after ``timeout`` s."""
        with self.cond:
            try:
                return wait_for(predicate, timeout, period=0.1, sleep=self.cond.wait)
            except WaitTimeout:
                return None

    def wait_ready(self, timeout: float = 60.0) -> Optional[float]:
        return self.wait(lambda: self.ready_at, timeout)

    def state_after(self, index: int, wanted: Callable[[str], bool]) -> Optional[Tuple[int, float, str]]:
        """(position, time, state) of the first state at or after ``index`` that is ``wanted``."""
        for pos in range(index, len(self.states)):
            t, state = self.states[pos]
            if wanted(state):
                return pos, t, state
        return None

    def wait_state(self, index: int, state: str, timeout: float) -> Optional[Tuple[int, float, str]]:
        """The first ``state`` at or after position ``index``, waited for up to ``timeout`` s."""
        return self.wait(lambda: self.state_after(index, lambda s: s == state), timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return bool(self.wait(lambda: self.states and self.states[-1][1] == IDLE, timeout))

    def reset_parameters(self) -> None:
        """What the course's controller does at (re)start: every parameter to -1."""
        self.arm.reset()

    def run_cycle(self, timeout: float = 15.0, from_idle: bool = True, ack: bool = True,
                  stop_before_cube: Optional[int] = None, pause: float = 0.0) -> Cycle:
        """Ask for an image, hand every cube over at once; the cycle as seen from the arm.

        ``ack=False``: never set RobotReady true (the cycle is left waiting; status "abandoned"
        once the detector goes back to idle by itself, "timeout" otherwise).
        ``stop_before_cube=i``: return as soon as the detector waits for cube i (1-based)
        without answering it (status "abandoned"; the caller plays a controller restart).
        ``pause``: s to wait, once the detector is idle, before setting takeImage (a random pause
        puts the request at a random phase of the detector's safety-net poll and of the master's
        notification threads, as a real arm's would be).
        """
        if from_idle and not self.wait_idle(timeout):
            return Cycle("timeout", note="detector not idle before the cycle")
        if pause > 0:
            time.sleep(pause)
        with self.cond:
            mark, faces_mark = len(self.states), len(self.faces)
        start = self.arm.request().started
        wall0 = time.time() - (time.monotonic() - start)  # the same instant on the wall clock
        cycle = Cycle("timeout", started=start)
        deadline = start + timeout

        def left() -> float:
            return max(deadline - time.monotonic(), 0.0)

        # ~faces, or back to idle after "detecting" without them (camera error).
        def faces_or_idle():
            if len(self.faces) > faces_mark:
                return "faces"
            hit = self.state_after(mark, lambda s: s == DETECTING)
            if hit and self.state_after(hit[0] + 1, lambda s: s == IDLE):
                return "idle"
            return None

        what = self.wait(faces_or_idle, left())
        if what == "idle":  # maybe ~faces is just behind the state message (other connection)
            what = self.wait(lambda: len(self.faces) > faces_mark and "faces", 0.5) or "idle"
        if what is None:
            cycle.note = "no ~faces and no return to idle"
            return cycle
        if what == "idle":
            cycle.status = "camera_error"
            cycle.protocol_ms = round((time.monotonic() - start) * 1e3, 3)
            cycle.note = f"{self.names.label} = {self.arm.read_label()!r}, no ~faces"
            return cycle

        arrived, msg = self.faces[faces_mark]
        cycle.cycle_ms = round((arrived - start) * 1e3, 3)
        cycle.faces = [f.label for f in msg.faces]
        cycle.inference_ms = round(float(msg.inference_ms), 3)
        cycle.camera_ms = round((msg.header.stamp.to_sec() - wall0) * 1e3, 3)
        seen = self.state_after(mark, lambda s: s == DETECTING)
        cycle.seen_ms = None if seen is None else round((seen[1] - start) * 1e3, 3)
        cycle.truth = list(rospy.get_param(self.truth_param, []) or [])
        count = len(msg.faces)
        pos = mark
        for cube in range(1, count + 1):
            hit = self.wait_state(pos, f"{WAITING_ROBOT_READY} {cube}/{count}", left())
            if hit is None:
                cycle.note = f"detector never waited for cube {cube}/{count}"
                return cycle
            pos = hit[0] + 1
            cycle.handed.append(self.arm.read_label())
            if stop_before_cube == cube or not ack:
                cycle.status = "abandoned"
                if ack:
                    return cycle
                hit = self.wait_state(pos, IDLE, left())
                if hit is None:
                    cycle.status = "timeout"
                    cycle.note = "RobotReady never answered and the detector kept waiting"
                else:
                    cycle.protocol_ms = round((hit[1] - start) * 1e3, 3)
                return cycle
            self.arm.cube_moved()
        hit = self.wait_state(pos, IDLE, left())
        if hit is None:
            cycle.note = "detector did not go back to idle"
            return cycle
        cycle.protocol_ms = round((hit[1] - start) * 1e3, 3)
        cycle.status = "done" if count else "no_faces"
        if not count and self.arm.read_label() != 0:
            cycle.note = f"no faces but {self.names.label} = {self.arm.read_label()!r}"
        return cycle


def summarize_cycles(cycles: List[Cycle]) -> Dict[str, object]:
    """Counts and timing percentiles of a list of cycles."""
    return {
        "cycles": len(cycles),
        "completed": sum(c.completed for c in cycles),
        "correct": sum(c.correct for c in cycles),
        "wrong": sum(c.completed and not c.correct for c in cycles),
        "camera_errors": sum(c.status == "camera_error" for c in cycles),
        "not_completed": sum(not c.completed for c in cycles),
        "cycle_ms": percentiles([c.cycle_ms for c in cycles]),
        "protocol_ms": percentiles([c.protocol_ms for c in cycles if c.completed]),
    }


def first_line_matching(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    if not match:
        return ""
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    return text[start: end if end >= 0 else len(text)].strip()


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
