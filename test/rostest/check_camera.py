#!/usr/bin/env python3
"""rostest: the simulated camera answers /get_image like poppy_controllers, through our GetImage type;
the nodes' camera client keeps one connection, survives a camera restart and names a dead camera."""

import signal
import subprocess
import unittest

import numpy as np
import rospy
import rostest
from cv_bridge import CvBridge
from roslib.packages import find_node

from cube_detect.errors import CameraError
from cube_detect.ros.camera import CameraClient
from cube_detect.srv import GetImage

# md5sum of poppy_controllers/GetImage: ours must match so we can call the real robot.
POPPY_GETIMAGE_MD5 = "b13d2865c5af2a64e6e30ab1b56e1dd5"


class CameraServiceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("check_camera")
        rospy.wait_for_service("/get_image", timeout=30.0)
        cls.get_image = rospy.ServiceProxy("/get_image", GetImage)

    def setUp(self):
        rospy.set_param("/sim_camera/empty", False)

    def test_service_type_is_poppy_controllers_one(self):
        self.assertEqual(GetImage._md5sum, POPPY_GETIMAGE_MD5)
        self.assertEqual(GetImage._type, "cube_detect/GetImage")

    def test_image_is_8uc3_bgr_like_the_real_robot(self):
        msg = self.get_image().image
        self.assertEqual(msg.encoding, "8UC3")
        self.assertIn((msg.width, msg.height), [(640, 480), (752, 480)])
        self.assertEqual(msg.step, msg.width * 3)
        frame = CvBridge().imgmsg_to_cv2(msg)
        self.assertEqual(frame.shape, (msg.height, msg.width, 3))
        # A real scene, not a blank frame: dark background and bright faces.
        self.assertGreater(float(np.percentile(frame, 99)) - float(np.percentile(frame, 5)), 60)
        self.assertTrue(rospy.get_param("/sim_camera/last_labels"))

    def test_empty_image_when_camera_disabled(self):
        rospy.set_param("/sim_camera/empty", True)
        msg = self.get_image().image
        self.assertEqual((msg.width, msg.height, len(msg.data)), (0, 0, 0))


    def test_empty_image_then_an_image_on_one_kept_connection(self):
        client = CameraClient("/get_image", timeout=10)
        rospy.set_param("/sim_camera/empty", True)
        self.assertEqual(client.fetch().width, 0)
        kept = client._proxy.transport
        rospy.set_param("/sim_camera/empty", False)
        self.assertGreater(client.fetch().width, 0)
        self.assertIs(client._proxy.transport, kept, "one connection for every image")

    def test_a_failing_camera_is_named_and_its_connection_kept(self):
        client = CameraClient("/get_image", timeout=10)
        client.fetch()
        kept = client._proxy.transport
        rospy.set_param("/sim_camera/fail", True)
        try:
            with self.assertRaisesRegex(CameraError, "^camera service /get_image: .*simulated camera failure"):
                client.fetch()
        finally:
            rospy.set_param("/sim_camera/fail", False)
        self.assertGreater(client.fetch().width, 0)
        self.assertIs(client._proxy.transport, kept)

    def test_camera_restart_then_a_dead_camera(self):
        service = "/restarting_camera/get_image"

        def start():
            proc = subprocess.Popen([find_node("cube_detect", "sim_camera")[0], "__name:=restarting_camera",
                                     f"_service:={service}", "_seed:=3"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rospy.wait_for_service(service, timeout=60)
            return proc

        def kill(proc):
            proc.send_signal(signal.SIGKILL)  # no unregistration: the master still names the dead camera
            proc.wait(timeout=30)

        client = CameraClient(service, timeout=10)
        proc = start()
        try:
            client.fetch()
            first = client._proxy.transport
            kill(proc)
            proc = start()
            self.assertGreater(client.fetch().width, 0, "the kept connection died with the camera: one retry")
            self.assertIsNot(client._proxy.transport, first)
            kill(proc)
            with self.assertRaisesRegex(CameraError, f"^camera service {service}: "):
                client.fetch()
            self.assertIsNone(client._proxy, "no connection is kept to a dead camera")
        finally:
            if proc.poll() is None:
                kill(proc)


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_camera", CameraServiceTest)
