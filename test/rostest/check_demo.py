#!/usr/bin/env python3
"""rostest: `roslaunch cube_detect demo.launch` (what `make demo` runs) completes its cycles.

Runs the demo launch file on this test's roscore: the simulated arm must complete every cycle
with exactly the camera's true labels, print one line per cycle, store its summary and end the
launch (sim_controller is required) with exit status 0.
"""

import json
import re
import subprocess
import tempfile
import unittest
from pathlib import Path

import rospy
import rostest

CYCLES = 3


class DemoLaunchTest(unittest.TestCase):
    def test_demo_launch_runs_its_cycles_and_ends(self):
        rospy.init_node("check_demo")
        seed = rospy.get_param("~seed", 3)
        with tempfile.TemporaryDirectory() as tmp:
            result_file = Path(tmp) / "summary.json"
            proc = subprocess.run(
                ["roslaunch", "--wait", "cube_detect", "demo.launch", f"cycles:={CYCLES}", f"seed:={seed}",
                 f"result_file:={result_file}"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240,
            )
            out = proc.stdout
            written = json.loads(result_file.read_text()) if result_file.exists() else None
        self.assertEqual(proc.returncode, 0, out[-5000:])
        lines = re.findall(r"sim_controller: cycle (\d)/(\d): expected \[(.*?)\] received \[(.*?)\] (\w+)", out)
        self.assertEqual([int(n) for n, *_ in lines], list(range(1, CYCLES + 1)), out[-5000:])
        for _, _, expected, received, verdict in lines:
            self.assertTrue(expected, "synthetic scenes have cubes")
            self.assertEqual(received, expected)
            self.assertEqual(verdict, "ok")
        self.assertIn(f"sim_controller: done: {CYCLES}/{CYCLES} cycles correct (100 %)", out)
        summary = rospy.get_param("/sim_controller/summary")
        self.assertEqual((summary["cycles"], summary["completed"], summary["correct"]), (CYCLES,) * 3)
        self.assertTrue(all(r["latency_ms"] > 0 for r in summary["results"]))
        self.assertEqual(written, summary)  # what `make demo` checks
        self.assertIn("detector: ready", out)


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_demo", DemoLaunchTest)
