#!/usr/bin/env python3
"""rostest: the detector and the capture node take their frames from an image topic.

This node plays usb_cam: it publishes synthetic scenes on /usb_cam/image_raw (bgr8, 15 Hz), each
frame's header naming its scene, and plays the arm. Checked: the detector uses the newest
frame (the ~faces header is the frame's), the capture node saves exactly its pixels, and once
the camera stops publishing, a frame older than image_max_age (0.5 s) is never used: the
cycle ends like a camera error (/label 0), the capture saves nothing, both say why; both work
again when frames come back.
"""

import shutil
import threading
import time
import unittest
from pathlib import Path

import cv2
import numpy as np
import rospy
import rostest
from cv_bridge import CvBridge
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from cube_detect.arm import NO_CUBE, ArmController
from cube_detect.msg import CubeFaces
from cube_detect.paramstore import wait_for
from cube_detect.protocol import DONE
from cube_detect.ros.params import RosParamStore
from cube_detect.simulation import SyntheticScenes

TOPIC = "/usb_cam/image_raw"
IDLE = "waiting_take_image"


class FakeUsbCam:
    """Publishes the current scene at ``rate`` Hz while ``running``; frame_id = the scene's name."""

    def __init__(self, rate=15.0):
        self.pub = rospy.Publisher(TOPIC, Image, queue_size=1)
        self.bridge = CvBridge()
        self.scenes = SyntheticScenes(11)
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.image, self.name = None, ""
        self.next_scene()
        self.thread = threading.Thread(target=self.loop, args=(rate,), daemon=True)
        self.thread.start()

    def next_scene(self):
        scene = self.scenes.next()
        with self.lock:
            self.image, self.name = scene.image, scene.name
        return scene.name

    def loop(self, rate):
        period = 1.0 / rate
        while not rospy.is_shutdown():
            if self.running.is_set():
                with self.lock:
                    msg = self.bridge.cv2_to_imgmsg(self.image, "bgr8")
                    msg.header.frame_id = self.name
                msg.header.stamp = rospy.Time.now()
                self.pub.publish(msg)
            time.sleep(period)


class ImageTopicTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("check_image_topic")
        cls.dataset = Path(rospy.get_param("~dataset"))
        cls.faces, cls.states, ready = [], [], []
        rospy.Subscriber("/detector/faces", CubeFaces, cls.faces.append)
        rospy.Subscriber("/detector/state", String, lambda m: cls.states.append(m.data))
        rospy.Subscriber("/detector/ready", Bool, lambda m: ready.append(m.data))
        wait_for(lambda: ready, 60, "/detector/ready")
        rospy.wait_for_service("/capture/capture", timeout=60)
        cls.capture = rospy.ServiceProxy("/capture/capture", Trigger)
        cls.camera = FakeUsbCam()
        cls.camera.running.set()
        pub = cls.camera.pub
        wait_for(lambda: pub.get_num_connections() >= 2, 30, f"the detector and the capture node on {TOPIC}")
        ArmController(RosParamStore()).reset()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dataset, ignore_errors=True)

    def cycle(self):
        """One protocol cycle from idle: (ArmCycle, the ~faces message or None)."""
        wait_for(lambda: self.states and self.states[-1] == IDLE, 20, "the detector idle")
        before = len(self.faces)
        arm = ArmController(RosParamStore(), timeout=20, no_cube_grace=3.0)
        cycle = arm.run_cycle(lambda: len(self.faces[before].faces) if len(self.faces) > before else None)
        return cycle, (self.faces[before] if len(self.faces) > before else None)

    def test_1_the_detector_uses_the_newest_frame(self):
        for _ in range(2):
            name = self.camera.next_scene()
            time.sleep(0.3)  # a few frames of the new scene
            cycle, faces = self.cycle()
            self.assertEqual(cycle.status, DONE)
            self.assertEqual(faces.header.frame_id, name, "the frame published last, not an older one")
            self.assertTrue(faces.faces)
            self.assertEqual(cycle.labels, [f.id for f in faces.faces])

    def test_2_the_capture_node_saves_the_newest_frame(self):
        self.camera.next_scene()
        time.sleep(0.3)
        answer = self.capture()
        self.assertTrue(answer.success, answer.message)
        saved = cv2.imread(answer.message, cv2.IMREAD_UNCHANGED)
        with self.camera.lock:
            self.assertTrue(np.array_equal(saved, self.camera.image), "exactly the published pixels")

    def test_3_a_stale_frame_is_never_used(self):
        self.camera.running.clear()  # the camera stops publishing
        try:
            time.sleep(1.0)  # the newest frame is now older than image_max_age (0.5 s)
            before = len(self.faces)
            cycle, _ = self.cycle()
            self.assertEqual((cycle.status, cycle.labels), (NO_CUBE, []), "label 0: no image")
            self.assertEqual(len(self.faces), before, "nothing published without a fresh frame")
            answer = self.capture()
            self.assertFalse(answer.success)
            self.assertIn(f"image topic {TOPIC}: no frame newer than 0.5 s", answer.message)
            self.assertEqual(rospy.get_param("/capture/last_error"), answer.message)
        finally:
            self.camera.running.set()
        time.sleep(0.3)
        cycle, faces = self.cycle()
        self.assertEqual(cycle.status, DONE)
        self.assertTrue(self.capture().success)


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_image_topic", ImageTopicTest)
