"""cube_detect: find the digit (1 or 2) on paper cubes for a Poppy Ergo Jr arm.

The package is plain Python. Importing it (or any module used on the robot:
inference, images, protocol, capture) never imports rospy or TensorFlow; the
ROS nodes in scripts/ and the training modules import those where they need them.
"""

__version__ = "0.1.0"
