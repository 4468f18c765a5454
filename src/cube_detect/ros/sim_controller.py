"""Simulated arm controller: plays the Poppy arm's side of the takeImage / label / RobotReady protocol.

As the course's controller does (``cube_detect.arm.ArmController``): resets the three
parameters to -1 at start-up, then for each cycle sets ``/label`` to -1 and ``/takeImage``
true and, for each cube, waits for ``/RobotReady`` false, reads ``/label``, "moves the cube"
(``~move_time`` s) and sets ``/RobotReady`` true; a 0 written by the detector (no cube found, or
no image) ends the cycle. It knows how many cubes to expect from the detector's ``~faces`` topic.

Per cycle it prints the simulated camera's truth (``/sim_camera/last_labels``) against the
labels received, and the latency from ``/takeImage`` true to the detector's ``~faces`` message.
After ``~cycles`` cycles it prints the accuracy, stores a summary in ``~summary`` and exits: 0
when every cycle completed (mismatches are reported, not fatal, unless ``~require_all_correct``),
1 when the detector never got ready or a cycle did not complete within ``~cycle_timeout``.
With ``~result_file`` the summary is also written there as JSON, for `make demo`: roslaunch
itself exits 0 whatever a required node's exit status. Private parameters:
``SimControllerSettings`` in ``cube_detect.ros.settings``.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import rospy
from std_msgs.msg import Bool

from cube_detect.arm import NO_CUBE, ArmController
from cube_detect.files import atomic_write_text
from cube_detect.labels import LABELS
from cube_detect.msg import CubeFaces
from cube_detect.protocol import DONE
from cube_detect.ros.params import RosParamStore
from cube_detect.ros.settings import SimControllerSettings, read_settings

NO_CUBE_GRACE_S = 1.0  # after /label == 0: how long the (empty) ~faces message may still take


def say(text: str) -> None:
    print(f"sim_controller: {text}", flush=True)


class SimController:
    def __init__(self, settings: SimControllerSettings):
        self.settings = settings
        self.names = settings.protocol_names()
        self.arm = ArmController(RosParamStore(), names=self.names, rate=settings.rate,
                                 move_time=settings.move_time, timeout=settings.cycle_timeout,
                                 no_cube_grace=NO_CUBE_GRACE_S, is_shutdown=rospy.is_shutdown)
        self.lock = threading.Lock()
        self.faces: List[Tuple[float, Any]] = []  # (arrival time.monotonic(), CubeFaces)
        self.ready = threading.Event()
        rospy.Subscriber(settings.faces_topic, CubeFaces, self.on_faces)
        rospy.Subscriber(settings.ready_topic, Bool, self.on_ready)

    def on_ready(self, msg: Any) -> None:
        if msg.data:
            self.ready.set()

    def on_faces(self, msg: Any) -> None:
        with self.lock:
            self.faces.append((time.monotonic(), msg))

    def faces_since(self, start: float) -> Optional[Tuple[float, Any]]:
        with self.lock:
            return next(((t, m) for t, m in self.faces if t >= start), None)

    def wait_until_serving(self) -> bool:
        """The detector's ~ready, then the camera service; False (said why) if either never comes."""
        timeout = self.settings.ready_timeout
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):  # in slices: Ctrl-C must not wait for the timeout
            if rospy.is_shutdown():
                return False
            if time.monotonic() > deadline:
                say("the detector never reported ready: giving up")
                return False
        try:  # the simulated camera imports the scene generator: it may come up after the detector
            rospy.wait_for_service(self.settings.image_service, timeout=timeout)
        except rospy.ROSInterruptException:
            return False
        except rospy.ROSException:
            say(f"the camera service {self.settings.image_service} never came up: giving up")
            return False
        return True

    def run_cycle(self, number: int) -> Dict[str, Any]:
        """One request and its report line; the cycle's record for the summary."""
        settings = self.settings

        def expected() -> Optional[int]:
            arrived = self.faces_since(self.arm.cycle.started) if self.arm.cycle else None
            return None if arrived is None else len(arrived[1].faces)

        cycle = self.arm.run_cycle(expected)
        arrived = self.faces_since(cycle.started)
        faces = arrived[1] if arrived else None
        latency = arrived[0] - cycle.started if arrived else None
        completed = cycle.status in (DONE, NO_CUBE)
        truth = list(rospy.get_param(settings.expected_param, []) or [])
        got = [LABELS.get(int(v), str(v)) for v in cycle.labels]
        no_image = cycle.status == NO_CUBE and faces is None  # label 0 without ~faces: the camera failed
        correct = completed and not no_image and got == truth
        note = ("ok" if correct else "TIMEOUT" if not completed
                else "NO IMAGE (label 0, no ~faces: the camera failed)" if no_image else "MISMATCH")
        scores = " ".join(f"{f.score:.2f}" for f in faces.faces) if faces else ""
        say(f"cycle {number}/{settings.cycles}: expected [{', '.join(truth)}] received [{', '.join(got)}] "
            f"{note}; latency {'-' if latency is None else f'{latency * 1e3:.0f} ms'}"
            + (f"; scores {scores}" if scores else "")
            + (f"; {faces.backend} {faces.inference_ms:.1f} ms" if faces else ""))
        return {"cycle": number, "expected": truth, "received": got, "completed": completed, "correct": correct,
                # -1: not measured (no ~faces: the camera failed). No None: XML-RPC.
                "latency_ms": -1.0 if latency is None else round(latency * 1e3, 1)}

    def run(self) -> int:
        names = self.names
        self.arm.reset()  # the course's controller resets everything at start-up
        say(f"parameters {names.take_image}, {names.label}, {names.robot_ready} reset to -1; "
            f"waiting for the detector (up to {self.settings.ready_timeout:g} s)")
        if not self.wait_until_serving():
            return 1
        say(f"detector ready: running {self.settings.cycles} cycle(s)")
        results = []
        for number in range(1, self.settings.cycles + 1):
            if rospy.is_shutdown():
                break
            results.append(self.run_cycle(number))
        return self.summarise(results)

    def summarise(self, results: List[Dict[str, Any]]) -> int:
        correct = sum(r["correct"] for r in results)
        completed = sum(r["completed"] for r in results)
        latencies = [r["latency_ms"] for r in results if r["latency_ms"] >= 0]
        summary = {
            "cycles": len(results), "completed": completed, "correct": correct,
            "accuracy": correct / len(results) if results else 0.0,
            "latency_ms_median": statistics.median(latencies) if latencies else -1.0,
            "latency_ms_max": max(latencies) if latencies else -1.0,
            "results": results,
        }
        rospy.set_param("~summary", summary)
        if self.settings.result_file:
            atomic_write_text(Path(self.settings.result_file), json.dumps(summary, indent=2) + "\n")
        latency = (f"latency median {summary['latency_ms_median']:.0f} ms, max {summary['latency_ms_max']:.0f} ms"
                   if latencies else "no latency measured")
        say(f"done: {correct}/{len(results)} cycles correct ({100.0 * summary['accuracy']:.0f} %), "
            f"{completed} completed; {latency}")
        cycles = self.settings.cycles
        if completed < cycles or (self.settings.require_all_correct and correct < cycles):
            return 1
        return 0


def main() -> None:
    rospy.init_node("sim_controller")
    sys.exit(SimController(read_settings(SimControllerSettings, rospy.get_param)).run())
