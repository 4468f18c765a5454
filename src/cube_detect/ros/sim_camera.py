"""Simulated Poppy Ergo Jr camera: serves /get_image exactly like poppy_controllers.

The real server answers ``CvBridge().cv2_to_imgmsg(frame)`` with no encoding argument, so the
message's encoding is ``8UC3`` with BGR pixels; with its camera disabled it answers an empty
image. Private parameters: ``SimCameraSettings`` (read at start) and ``SimCameraFaults`` (read
at every call, so that tests change them live) in ``cube_detect.ros.settings``.
Publishes the true sorted labels of the last served image on ``~expected`` (latched
std_msgs/String, comma-separated) and keeps them in ``~last_labels``.

A camera has its next frame ready when asked (pypot's camera keeps grabbing; a topic camera
has the newest frame): so the next scene is rendered or read in the background as soon as one
is served, and a call costs what a camera's does (faults: one read of ``~``, the message).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

import numpy as np
import rospy
from cv_bridge import CvBridge
from sensor_msgs.msg import Image
from std_msgs.msg import String

from cube_detect.images import ROBOT_ENCODING
from cube_detect.ros.settings import SimCameraFaults, SimCameraSettings, read_settings
from cube_detect.simulation import Scene, encode_for_camera, make_scene_source
from cube_detect.srv import GetImage, GetImageResponse


def blank_scene(index: int) -> Scene:
    """The cell with every cube taken: dark noisy background, uneven light, nothing to find."""
    rng = np.random.default_rng([1234, index])
    height, width = 480, 640
    light = np.linspace(14, 34, width)[None, :] + np.linspace(0, 10, height)[:, None]
    gray = light + rng.normal(0, 4, (height, width))
    image = np.clip(np.repeat(gray[:, :, None], 3, axis=2), 0, 255).astype(np.uint8)
    return Scene(image, [], f"blank:{index}")


class SimCamera:
    def __init__(self, settings: SimCameraSettings):
        self.bridge = CvBridge()
        self.source = make_scene_source(settings.images, settings.seed, settings.sort_axis)
        self.ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="next_scene")  # one: scenes stay in order
        self.pending: Future = self.ahead.submit(self.source.next)
        self.taking = threading.Lock()  # calls on two connections at once: each takes its own scene
        self.expected_pub = rospy.Publisher("~expected", String, queue_size=1, latch=True)
        self.served = 0
        self.last_scene: Optional[Scene] = None
        self.reported: set = set()  # XML files already warned about (once each)

    def handle(self, _request: Any) -> Any:
        private = rospy.get_param("~", {})  # one call to the master for every fault setting
        faults = read_settings(SimCameraFaults, lambda name, default: private.get(name[1:], default))
        if faults.delay > 0:
            time.sleep(faults.delay)
        if faults.fail:
            raise rospy.ServiceException("simulated camera failure (~fail is true)")
        if faults.empty:
            return GetImageResponse(Image())  # what the real robot answers with its camera off
        if faults.blank:
            scene = blank_scene(self.served)
        elif faults.hold and self.last_scene is not None:
            scene = self.last_scene
        else:
            with self.taking:
                try:
                    scene = self.pending.result()  # an unreadable image fails this call, as before
                finally:
                    self.pending = self.ahead.submit(self.source.next)
        self.last_scene = scene
        for path, why in list(getattr(self.source, "bad_truth", {}).items()):
            if path not in self.reported:
                self.reported.add(path)
                rospy.logwarn("sim_camera: %s (its image is served without truth)", why)
        pixels = encode_for_camera(scene.image, faults.encoding)
        # Exactly the real server's call for the default: no encoding argument -> "8UC3".
        if faults.encoding == ROBOT_ENCODING:
            msg = self.bridge.cv2_to_imgmsg(pixels)
        else:
            msg = self.bridge.cv2_to_imgmsg(pixels, faults.encoding)
        msg.header.stamp = rospy.Time.now()
        msg.header.frame_id = "camera"
        rospy.set_param("~last_labels", scene.labels)
        self.expected_pub.publish(String(",".join(scene.labels)))
        self.served += 1
        rospy.logdebug("sim_camera: served %s (%s) truth %s", scene.name, faults.encoding, scene.labels)
        return GetImageResponse(msg)


def main() -> None:
    rospy.init_node("sim_camera")
    settings = read_settings(SimCameraSettings, rospy.get_param)
    camera = SimCamera(settings)
    rospy.Service(settings.service, GetImage, camera.handle)
    rospy.loginfo("sim_camera: serving %s", settings.service)
    rospy.spin()
