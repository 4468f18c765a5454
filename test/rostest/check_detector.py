#!/usr/bin/env python3
"""rostest: detector_node serves the takeImage / label / RobotReady protocol on a real roscore.

This node plays the arm's controller against the detector (launch/detect.launch) and the
simulated camera, and asserts the exact label sequences against the camera's truth
(/sim_camera/last_labels). Covered: cycles in a row, string-valued parameters, zero faces,
camera down / slow / empty then back, every image encoding, a controller restarting mid-cycle,
the ~detect service, ~faces / ~labels / ~image_annotated.
"""

import json
import subprocess
import threading
import time
import unittest
import urllib.request
from typing import Any, Optional

import rospy
import rostest
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String

from cube_detect.arm import NO_CUBE, ArmController
from cube_detect.images import ROBOT_ENCODING, SUPPORTED_ENCODINGS
from cube_detect.labels import NAME_TO_ID
from cube_detect.msg import CubeFaces
from cube_detect.paramstore import ProtocolNames, wait_for
from cube_detect.protocol import DONE
from cube_detect.ros.params import RosParamStore
from cube_detect.srv import DetectCubes

NAMES = ProtocolNames()
TAKE, LABEL, READY = NAMES.take_image, NAMES.label, NAMES.robot_ready
CAMERA = "/sim_camera/"
IDLE = "waiting_take_image"  # /detector/state between cycles


class RosparamCommandStore(RosParamStore):
    """Writes with the `rosparam set` command (YAML), as a controller's shell script would."""

    @staticmethod
    def set(name: str, value: Any) -> None:
        subprocess.run(["rosparam", "set", name, str(value)], check=True, timeout=30)


class DetectorProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("check_detector")
        cls.lock = threading.Lock()
        cls.faces, cls.labels_msgs, cls.states, cls.served = [], [], [], []
        rospy.Subscriber("/detector/faces", CubeFaces, lambda m: cls._keep(cls.faces, m))
        rospy.Subscriber("/detector/labels", String, lambda m: cls._keep(cls.labels_msgs, m))
        rospy.Subscriber("/detector/state", String, lambda m: cls._keep(cls.states, m.data))
        rospy.Subscriber(CAMERA + "expected", String, lambda m: cls._keep(cls.served, m.data))  # one per image
        ready = []
        rospy.Subscriber("/detector/ready", Bool, lambda m: ready.append(m.data))
        wait_for(lambda: ready and ready[-1], 60, "/detector/ready true")
        rospy.wait_for_service("/detector/detect", timeout=10)
        rospy.wait_for_service("/get_image", timeout=60)
        cls.detect = rospy.ServiceProxy("/detector/detect", DetectCubes)
        for name in (TAKE, LABEL, READY):
            rospy.set_param(name, -1)  # as the course's controller does at start-up

    @classmethod
    def _keep(cls, store, msg):
        with cls.lock:
            store.append(msg)

    def setUp(self):
        for name, value in (("blank", False), ("fail", False), ("empty", False), ("hold", False),
                            ("delay", 0.0), ("encoding", ROBOT_ENCODING)):
            rospy.set_param(CAMERA + name, value)

    # ------------------------------------------------------------------ the controller's side
    def new_faces(self, count_before, timeout=15):
        return wait_for(lambda: len(self.faces) > count_before and self.faces[count_before], timeout,
                        "a new /detector/faces message")

    def wait_idle(self, mark=None):
        """Until the detector waits for takeImage (again, after ``mark`` state messages)."""
        wait_for(lambda: self.states and self.states[-1] == IDLE and (mark is None or len(self.states) > mark),
                 30, f"/detector/state {IDLE}")

    def run_cycle(self, take_value=True, ready_value=True, from_idle=True, store=None):
        """Ask for an image and take every cube; (labels received, truth as ids, faces message)."""
        if from_idle:
            self.wait_idle()
        mark = len(self.states)
        before = len(self.faces)

        def expected() -> Optional[int]:
            return len(self.faces[before].faces) if len(self.faces) > before else None

        arm = ArmController(store or RosParamStore(), take_value=take_value, ready_value=ready_value, timeout=30)
        cycle = arm.run_cycle(expected)
        self.assertIn(cycle.status, (DONE, NO_CUBE), f"cycle {cycle}")
        faces = self.new_faces(before)
        truth = [NAME_TO_ID[name] for name in rospy.get_param(CAMERA + "last_labels")]
        self.wait_idle(mark)  # the detector saw the last RobotReady: the cycle is over
        self.assertIs(rospy.get_param(TAKE), False, "the detector resets takeImage to false")
        return cycle.labels, truth, faces

    def assert_cycle_matches_truth(self, received, truth, faces):
        self.assertTrue(truth, "the scene has cubes")
        self.assertEqual(received, truth)  # exact order and classes
        self.assertEqual([f.id for f in faces.faces], truth)
        csv = ",".join(rospy.get_param(CAMERA + "last_labels"))
        wait_for(lambda: self.labels_msgs and self.labels_msgs[-1].data == csv, 5, f"~labels {csv!r}")

    # ------------------------------------------------------------------ tests
    def test_cycles_in_a_row_hand_over_the_true_labels_in_order(self):
        for _ in range(3):
            received, truth, faces = self.run_cycle()
            self.assert_cycle_matches_truth(received, truth, faces)
            xs = [(f.xmin + f.xmax) / 2 for f in faces.faces]
            self.assertEqual(xs, sorted(xs), "sorted left to right")
            self.assertTrue(all(0.5 <= f.score <= 1.0 for f in faces.faces))
            self.assertFalse(faces.header.stamp.is_zero())
            self.assertIn(faces.backend, ("cpu", "edgetpu"))
            self.assertIs(rospy.get_param(READY), True)

    def test_string_valued_parameters(self):
        received, truth, faces = self.run_cycle(take_value="True", ready_value="true")
        self.assert_cycle_matches_truth(received, truth, faces)
        received, truth, faces = self.run_cycle(take_value="1", ready_value=1)
        self.assert_cycle_matches_truth(received, truth, faces)
        # `rosparam set` itself (YAML: true -> bool, 'true' -> a string) as a controller's shell script would do.
        received, truth, _ = self.run_cycle(take_value="true", ready_value="'true'", store=RosparamCommandStore())
        self.assertEqual(received, truth)

    def test_zero_faces_sets_label_0_leaves_robot_ready_and_next_cycle_works(self):
        self.wait_idle()  # never overwrite RobotReady while the detector still waits for it
        rospy.set_param(CAMERA + "blank", True)
        rospy.set_param(READY, "untouched")
        received, truth, faces = self.run_cycle()
        self.assertEqual((received, truth, list(faces.faces)), ([], [], []))
        self.assertEqual(rospy.get_param(LABEL), 0)
        time.sleep(0.3)  # a few polling periods: RobotReady must stay as the controller left it
        self.assertEqual(rospy.get_param(READY), "untouched")
        wait_for(lambda: self.labels_msgs and self.labels_msgs[-1].data == "", 5, "~labels ''")
        rospy.set_param(READY, True)
        rospy.set_param(CAMERA + "blank", False)
        self.assert_cycle_matches_truth(*self.run_cycle())

    def camera_failure_cycle(self):
        """A cycle whose camera fails: label := 0, RobotReady and ~faces untouched."""
        self.wait_idle()
        mark = len(self.states)
        faces_before = len(self.faces)
        rospy.set_param(READY, "untouched")
        cycle = ArmController(RosParamStore(), timeout=20).run_cycle()  # ends on label 0, after the retries
        self.assertEqual((cycle.status, cycle.labels), (NO_CUBE, []), f"{LABEL} == 0 after the camera retries")
        self.wait_idle(mark)
        self.assertIs(rospy.get_param(TAKE), False)
        self.assertEqual(rospy.get_param(READY), "untouched")
        self.assertEqual(len(self.faces), faces_before, "nothing published without an image")
        rospy.set_param(READY, True)

    def test_camera_down_then_back(self):
        rospy.set_param(CAMERA + "fail", True)
        self.camera_failure_cycle()
        answer = self.detect()
        self.assertFalse(answer.success)
        self.assertIn("/get_image", answer.message)
        rospy.set_param(CAMERA + "fail", False)
        self.assert_cycle_matches_truth(*self.run_cycle())

    def test_camera_too_slow_then_back(self):
        served = len(self.served)
        rospy.set_param(CAMERA + "delay", 1.5)  # camera_timeout is 1 s in detector.test
        self.camera_failure_cycle()
        rospy.set_param(CAMERA + "delay", 0.0)
        # Both attempts' late answers are served after the detector gave up; let them land so
        # that /sim_camera/last_labels is the next cycle's truth.
        wait_for(lambda: len(self.served) >= served + 2, 10, "the two late camera answers")
        self.assert_cycle_matches_truth(*self.run_cycle())

    def test_empty_image_then_back(self):
        rospy.set_param(CAMERA + "empty", True)
        self.camera_failure_cycle()
        answer = self.detect()
        self.assertFalse(answer.success)
        self.assertIn("camera returned an empty image (is the camera enabled?)", answer.message)
        rospy.set_param(CAMERA + "empty", False)
        self.assert_cycle_matches_truth(*self.run_cycle())

    def test_every_encoding_gives_the_same_labels(self):
        reference = self.detect()  # a new scene, then held for every encoding
        truth = [NAME_TO_ID[n] for n in rospy.get_param(CAMERA + "last_labels")]
        self.assertTrue(reference.success, reference.message)
        self.assertEqual(list(reference.ids), truth)
        rospy.set_param(CAMERA + "hold", True)
        for encoding in SUPPORTED_ENCODINGS:
            rospy.set_param(CAMERA + "encoding", encoding)
            answer = self.detect()
            self.assertTrue(answer.success, f"{encoding}: {answer.message}")
            self.assertEqual(list(answer.ids), truth, encoding)
            for got, want in zip(answer.scores, reference.scores):
                self.assertAlmostEqual(got, want, places=4, msg=encoding)
        # ... and through the protocol, with the robot's gray camera encoding
        rospy.set_param(CAMERA + "encoding", "8UC1")
        received, truth2, faces = self.run_cycle()
        self.assertEqual((received, truth2), (truth, truth))

    def test_controller_restart_mid_cycle_does_not_hang_the_detector(self):
        self.wait_idle()
        before = len(self.faces)
        arm = ArmController(RosParamStore())
        arm.request()
        faces = self.new_faces(before)
        wait_for(arm.cube_waiting, 10, f"{READY} false")
        arm.reset()  # the controller restarts: resets everything to -1 (and asks again, below)
        self.assertTrue(faces.faces)
        wait_for(lambda: self.states[-1] == f"waiting_robot_ready 1/{len(faces.faces)}", 5, "waiting for cube 1")
        time.sleep(0.3)  # the detector keeps waiting: -1 is not "RobotReady true"
        self.assertEqual(self.states[-1], f"waiting_robot_ready 1/{len(faces.faces)}")
        # ... until the restarted controller asks again: a new cycle, served normally.
        self.assert_cycle_matches_truth(*self.run_cycle(from_idle=False))

    def test_detect_service_answers_without_touching_the_protocol(self):
        self.wait_idle()
        sentinels = {TAKE: "sentinel-take", LABEL: 42, READY: "sentinel-ready"}
        for name, value in sentinels.items():
            rospy.set_param(name, value)
        faces_before = len(self.faces)
        answer = self.detect()
        truth = rospy.get_param(CAMERA + "last_labels")
        self.assertTrue(answer.success, answer.message)
        self.assertEqual(list(answer.labels), truth)
        self.assertEqual(list(answer.ids), [NAME_TO_ID[n] for n in truth])
        self.assertEqual(len(answer.scores), len(truth))
        self.assertEqual([f.label for f in answer.faces.faces], truth)
        self.assertFalse(answer.faces.header.stamp.is_zero())
        time.sleep(0.3)
        self.assertEqual({n: rospy.get_param(n) for n in sentinels}, sentinels)
        self.assertEqual(len(self.faces), faces_before)
        for name in (TAKE, LABEL, READY):
            rospy.set_param(name, -1)

    def test_the_live_view_follows_the_cycles(self):
        url = rospy.get_param("/detector/live_url")  # web:=true, web_port:=0 in detector.test
        self.assertTrue(url.startswith("http://127.0.0.1:"), url)
        received, truth, faces = self.run_cycle()
        self.assert_cycle_matches_truth(received, truth, faces)
        with urllib.request.urlopen(url + "status.json", timeout=10) as answer:
            status = json.loads(answer.read())
        self.assertEqual(status["labels"], [f.label for f in faces.faces])
        self.assertEqual(status["state"], IDLE)
        self.assertIs(status["params"][TAKE], False)
        self.assertIn("cpu", status["backend"])
        with urllib.request.urlopen(url + "frame.jpg", timeout=10) as answer:
            self.assertEqual(answer.headers["Content-Type"], "image/jpeg")
            self.assertEqual(answer.read()[:2], b"\xff\xd8")

    def test_annotated_image_while_someone_watches(self):
        images = []
        sub = rospy.Subscriber("/detector/image_annotated", Image, images.append)
        try:
            wait_for(lambda: sub.get_num_connections() > 0, 10, "connection to ~image_annotated")
            received, truth, faces = self.run_cycle()
            self.assert_cycle_matches_truth(received, truth, faces)
            image = wait_for(lambda: images and images[-1], 5, "an annotated image")
            self.assertEqual(image.encoding, "bgr8")
            self.assertIn((image.width, image.height), [(640, 480), (752, 480)])
            self.assertEqual(image.header.stamp, faces.header.stamp)
        finally:
            sub.unregister()


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_detector", DetectorProtocolTest)
