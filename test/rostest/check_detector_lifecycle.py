#!/usr/bin/env python3
"""rostest: detector_node as a process: alternate parameter names, clean shutdown, bad models,
a /robotReady controller on default arguments, a relative model path as roslaunch passes it,
a model with its own classes.

Starts its own detector_node processes against the simulated camera of the launch
file, so it can watch their output and exit status.
"""

import os
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
from cv_bridge import CvBridge
from roslib.packages import find_node
from std_msgs.msg import Bool, String

from bench.procs import ProcessOutput
from cube_detect.arm import NO_CUBE, ArmController
from cube_detect.inference import load_detector
from cube_detect.labels import NAME_TO_ID
from cube_detect.modelspec import ModelSpec
from cube_detect.msg import CubeFaces
from cube_detect.paramstore import ProtocolNames, wait_for
from cube_detect.protocol import DONE
from cube_detect.ros.params import RosParamStore
from cube_detect.srv import GetImage

MODEL = Path(rospkg.RosPack().get_path("cube_detect")) / "models" / "cube_detect.tflite"
ALT = {"take_image_param": "/cell/takeImage", "label_param": "/cell/label", "robot_ready_param": "/robotReady"}
ALT_NAMES = ProtocolNames(take_image=ALT["take_image_param"], label=ALT["label_param"],
                          robot_ready=ALT["robot_ready_param"])


def start_detector(name, cwd=None, env=None, remaps=(), **params):
    # The executable roslaunch would run (rosrun's `find` trips over a workspace inside the package).
    args = [find_node("cube_detect", "detector_node")[0], f"__name:={name}", *remaps]
    args += [f"_{key}:={value}" for key, value in params.items()]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)


def clear_protocol_parameters():
    for name in ("/takeImage", "/label", "/RobotReady", "/robotReady"):
        if rospy.has_param(name):
            rospy.delete_param(name)


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
        # The shipped sidecar without its model_sha256 (that check would name the sidecar): the
        # flatbuffer itself is what is corrupt here.
        spec = ModelSpec.load(MODEL.with_suffix(".json"))
        spec.model_sha256 = ""
        spec.save(corrupt.with_suffix(".json"))
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

    # ------------------------------------------------------------------ issue 11, 12, 15
    def serve_one_cycle(self, node, names=ProtocolNames(), start_kwargs=None, **params):
        """Start a detector ``node``, run one protocol cycle as a controller using ``names``;
        (cycle, ~faces message, ~labels messages, ~classes message, the node's output)."""
        clear_protocol_parameters()
        faces, labels, classes, ready = [], [], [], []
        subs = [rospy.Subscriber(f"/{node}/faces", CubeFaces, faces.append),
                rospy.Subscriber(f"/{node}/labels", String, lambda m: labels.append(m.data)),
                rospy.Subscriber(f"/{node}/classes", String, lambda m: classes.append(m.data)),
                rospy.Subscriber(f"/{node}/ready", Bool, lambda m: ready.append(m.data))]
        output = ProcessOutput(start_detector(node, **(start_kwargs or {}), **params))
        try:
            try:
                wait_for(lambda: ready, 60, f"/{node}/ready")
            except Exception:
                raise AssertionError(output.stop()) from None
            wait_for(lambda: labels and classes, 10, f"/{node}/labels and /{node}/classes before the first cycle")
            self.assertEqual(labels, [""], "~labels: one (empty) message before the first cycle")
            arm = ArmController(RosParamStore(), names=names, timeout=30)
            arm.reset()  # the course's controller at start-up: its parameters to -1
            cycle = arm.run_cycle(lambda: len(faces[-1].faces) if faces else None)
            self.assertIn(cycle.status, (DONE, NO_CUBE), output.text())
            return cycle, faces[-1], labels, classes[-1], output
        finally:
            for sub in subs:
                sub.unregister()
            output.stop()

    def test_robotReady_controller_on_default_arguments(self):
        """The course's integration code says /robotReady: the default (auto) serves it."""
        cycle, faces, labels, _, output = self.serve_one_cycle(
            "detector_lower", names=ProtocolNames(robot_ready="/robotReady"))
        self.assertEqual(cycle.labels, [f.id for f in faces.faces])
        self.assertTrue(cycle.labels, "the scene has cubes")
        self.assertFalse(rospy.has_param("/RobotReady"), "the name the controller does not use is never written")
        self.assertIs(rospy.get_param("/robotReady"), True)
        text = output.text()
        self.assertIn("handshake /RobotReady or /robotReady: whichever the controller has set", text)
        self.assertIn("handshake: /robotReady (the one the controller has set; /RobotReady not set)", text)

    def test_relative_model_path_is_resolved_from_where_roslaunch_was_started(self):
        """roslaunch runs its nodes in ~/.ros; model:=models/cube_detect.tflite from the package's root."""
        ros_home = self.tmp / "ros_home"
        ros_home.mkdir(exist_ok=True)
        env = dict(os.environ, PWD=str(MODEL.parent.parent))
        # ... and a remapped parameter name (the ready line prints names after remapping).
        cycle, faces, _, _, output = self.serve_one_cycle(
            "detector_relative", names=ProtocolNames(take_image="/cell_rel/takeImage"),
            start_kwargs={"cwd": str(ros_home), "env": env, "remaps": ["/takeImage:=/cell_rel/takeImage"]},
            model="models/cube_detect.tflite")
        self.assertEqual(cycle.labels, [f.id for f in faces.faces])
        self.assertIn("ready: waiting for /cell_rel/takeImage true (labels -> /label, handshake", output.text())
        self.assertIn(f"models/cube_detect.tflite is relative: resolved against {MODEL.parent.parent}, "
                      "the directory roslaunch was started from", output.text())
        # A relative path that is nowhere: the fatal line says how it was resolved.
        missing = "models/nowhere.tflite"
        proc = start_detector("detector_relative_missing", cwd=str(ros_home), env=env, model=missing)
        out, _ = proc.communicate(timeout=60)
        fatal = [line for line in out.splitlines() if "FATAL" in line]
        self.assertEqual(len(fatal), 1, out)
        self.assertIn(f"{MODEL.parent.parent / missing}: model file not found ({missing} is relative: resolved "
                      f"against {MODEL.parent.parent}", fatal[0])

    def test_custom_classes_model_hands_over_the_label_maps_ids_and_names(self):
        """The digits model with a sidecar naming its classes {3: cube, 7: empty}: a valid
        2-class model whose first heatmap channel (digits: one) is id 3, the second (two) id 7."""
        custom = self.tmp / "custom.tflite"
        shutil.copy(MODEL, custom)
        spec = ModelSpec.load(MODEL.with_suffix(".json"))
        spec.labels = {3: "cube", 7: "empty"}
        spec.reader = None  # the face reader reads digits: a custom class set has none
        spec.save(custom.with_suffix(".json"))
        names = {1: ("cube", 3), 2: ("empty", 7)}  # digits id -> (name, id) of the custom map
        cycle, faces, labels, classes, output = self.serve_one_cycle("detector_custom", model=str(custom))
        self.assertEqual(classes, "3 cube\n7 empty")
        self.assertIn("classes 3 cube, 7 empty", output.text())
        self.assertTrue(faces.faces, "the scene has cubes")
        self.assertEqual(cycle.labels, [f.id for f in faces.faces])  # /label: the map's ids
        self.assertEqual(labels[-1], ",".join(f.label for f in faces.faces))
        # The same frame through the digits model (the camera holds its last scene).
        rospy.set_param("/sim_camera/hold", True)
        try:
            image = CvBridge().imgmsg_to_cv2(rospy.ServiceProxy("/get_image", GetImage)().image)
        finally:
            rospy.set_param("/sim_camera/hold", False)
        digits = load_detector(MODEL).detect(image)
        self.assertEqual([(f.label, f.id) for f in faces.faces], [names[d.class_id] for d in digits])
        self.assertTrue(set(cycle.labels) <= {3, 7})


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_detector_lifecycle", DetectorLifecycleTest)
