#!/usr/bin/env python3
"""rostest: the simulated camera answers /get_image like poppy_controllers, through our GetImage type."""

import unittest

import numpy as np
import rospy
import rostest
from cv_bridge import CvBridge

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


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_camera", CameraServiceTest)
