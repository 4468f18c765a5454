#!/usr/bin/env python3
"""rostest: detector_node as a process: alternate parameter names, clean shutdown, bad models.

Starts its own detector_node processes against the simulated camera of the launch
file, so it can watch their output and exit status.
"""

import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import rospkg
import rospy
import rostest
from roslib.packages import find_node
from std_msgs.msg import Bool

from cube_detect.labels import NAME_TO_ID
from cube_detect.msg import CubeFaces
from cube_detect.protocol import DONE, ArmController, ProtocolNames, wait_for
from cube_detect.ros.params import RosParamStore

MODEL = Path(rospkg.RosPack().get_path("cube_detect")) / "models" / "cube_detect.tflite"
ALT = {"take_image_param": "/cell/takeImage", "label_param": "/cell/label", "robot_ready_param": "/robotReady"}
ALT_NAMES = ProtocolNames(take_image=ALT["take_image_param"], label=ALT["label_param"],
                          robot_ready=ALT["robot_ready_param"])


def start_detector(name, **params):
    # The executable roslaunch would run (rosrun's `find` trips over a workspace inside the package).
    args = [find_node("cube_detect", "detector_node")[0], f"__name:={name}"]
    args += [f"_{key}:={value}" for key, value in params.items()]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class DetectorLifecycleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("check_detector_lifecycle")
        rospy.wait_for_service("/get_image", timeout=60)
        cls.tmp = Path(tempfile.mkdtemp(prefix="cube_detect_lifecycle_"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_fails_to_start(self, name, expected_text, **params):
        ready = []
        sub = rospy.Subscriber(f"/{name}/ready", Bool, lambda m: ready.append(m.data))
        proc = start_detector(name, **params)
        try:
            out, _ = proc.communicate(timeout=60)
        finally:
            sub.unregister()
            if proc.poll() is None:
                proc.kill()
        self.assertNotEqual(proc.returncode, 0, out)
        fatal = [line for line in out.splitlines() if "FATAL" in line]
        self.assertEqual(len(fatal), 1, out)  # one line, naming the problem
        self.assertIn(expected_text, fatal[0])
        self.assertEqual(ready, [], "never reported ready")

    def test_missing_model_is_one_fatal_line_and_a_non_zero_exit(self):
        missing = self.tmp / "nowhere" / "cube_detect.tflite"
        self.assert_fails_to_start("detector_missing", str(missing), model=str(missing))

    def test_corrupt_model_is_one_fatal_line_and_a_non_zero_exit(self):
        corrupt = self.tmp / "corrupt.tflite"
        corrupt.write_bytes(b"this is not a flatbuffer" * 10)
        shutil.copy(MODEL.with_suffix(".json"), corrupt.with_suffix(".json"))
        self.assert_fails_to_start("detector_corrupt", str(corrupt), model=str(corrupt))

    def test_labels_that_do_not_match_the_model(self):
        labels = self.tmp / "labels.txt"
        labels.write_text("1 one\n2 two\n3 three\n")
        self.assert_fails_to_start("detector_labels", str(labels), labels=str(labels))

    def test_alternate_names_then_clean_shutdown_while_waiting_for_robot_ready(self):
        arm = ArmController(RosParamStore(), names=ALT_NAMES)
        arm.reset()
        for name in ("/takeImage", "/label", "/RobotReady"):
            if rospy.has_param(name):
                rospy.delete_param(name)
        faces, ready = [], []
        rospy.Subscriber("/detector_alt/faces", CubeFaces, faces.append)
        rospy.Subscriber("/detector_alt/ready", Bool, lambda m: ready.append(m.data))
        proc = start_detector("detector_alt", **ALT)
        try:
            wait_for(lambda: ready, 60, "/detector_alt/ready")
            # One full cycle on the alternate names.
            cycle = arm.run_cycle(lambda: len(faces[-1].faces) if faces else None)
            truth = [NAME_TO_ID[n] for n in rospy.get_param("/sim_camera/last_labels")]
            self.assertTrue(truth)
            self.assertEqual((cycle.status, cycle.labels), (DONE, truth))
            self.assertIs(rospy.get_param(ALT_NAMES.take_image), False)
            for name in ("/takeImage", "/label", "/RobotReady"):
                self.assertFalse(rospy.has_param(name), f"{name} must not be used")
            # Next cycle: stop while the detector waits for the controller.
            count = len(faces)
            arm.request()
            wait_for(lambda: len(faces) > count, 15, "second /detector_alt/faces")
            wait_for(arm.cube_waiting, 10, f"{ALT_NAMES.robot_ready} false")
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)  # what roslaunch does on Ctrl-C
            out, _ = proc.communicate(timeout=10)
            self.assertLess(time.monotonic() - started, 5.0, out)
            self.assertEqual(proc.returncode, 0, out)
            self.assertNotIn("Traceback", out)
            self.assertIn("shutting down after 2 cycle(s)", out)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_detector_lifecycle", DetectorLifecycleTest)
