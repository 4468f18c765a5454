#!/usr/bin/env python3
"""rostest: `python -m cube_detect doctor` on a real master with the simulated camera: one line per
check, ✗ with the fix for a disabled camera or an unreadable encoding, exit 0 only without ✗."""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import rospy
import rostest

from cube_detect.srv import GetImage


class DoctorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("check_doctor")
        rospy.wait_for_service("/get_image", timeout=30.0)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        rospy.set_param("/sim_camera/empty", False)
        rospy.set_param("/sim_camera/encoding", "8UC3")

    def doctor(self):
        picture = Path(self.tmp.name) / "doctor.png"
        proc = subprocess.run([sys.executable, "-m", "cube_detect", "doctor", "--annotated", str(picture)],
                              capture_output=True, text=True, timeout=240)
        return proc.returncode, proc.stdout.splitlines(), picture

    def line(self, lines, start):
        found = [ln for ln in lines if ln.startswith(start)]
        self.assertEqual(len(found), 1, f"{start!r} in {lines}")
        return found[0]

    def test_a_good_cell_has_no_problem(self):
        rospy.set_param("/takeImage", False)
        code, lines, picture = self.doctor()
        self.assertEqual(code, 0, lines)
        self.line(lines, "✓ master: ")
        self.assertIn(GetImage._md5sum, self.line(lines, "✓ camera: /get_image"))
        self.assertIn("8UC3 from /get_image", self.line(lines, "ℹ frame: "))
        self.line(lines, "✓ model: ")
        self.assertIn("cpu via", self.line(lines, "ℹ backend: "))
        self.assertRegex(self.line(lines, "ℹ detections: "), r"[1-4] at threshold")
        self.assertTrue(picture.is_file())
        self.line(lines, "ℹ parameter: /takeImage = False")
        self.line(lines, "ℹ parameter: /label not set")
        self.line(lines, "ℹ detector: no detector node running")
        self.assertEqual(lines[-1], "doctor: no problem found (exit 0)")
        self.assertFalse([ln for ln in lines[:-1] if ln[:2] not in ("✓ ", "✗ ", "ℹ ")], lines)

    def test_a_disabled_camera_is_named_with_the_fix(self):
        rospy.set_param("/sim_camera/empty", True)
        code, lines, _ = self.doctor()
        self.assertEqual(code, 1, lines)
        self.assertIn("empty image: camera disabled?", self.line(lines, "✗ frame: "))
        self.assertIn("a synthetic sample frame", self.line(lines, "ℹ frame: "))  # the model still checked
        self.assertEqual(lines[-1], "doctor: 1 problem(s) (exit 1)")

    def test_an_encoding_the_nodes_cannot_read_is_named(self):
        rospy.set_param("/sim_camera/encoding", "mono16")
        code, lines, _ = self.doctor()
        self.assertEqual(code, 1, lines)
        self.assertIn("image encoding 'mono16' is not supported", self.line(lines, "✗ frame: "))


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_doctor", DoctorTest)
