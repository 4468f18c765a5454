"""cube_detect: find the digit (1 or 2) on paper cubes for a Poppy Ergo Jr arm.

The package is plain Python. Importing it (or any module used on the robot:
inference, images, protocol, capture) never imports rospy or TensorFlow; the
ROS nodes in scripts/ and the training modules import those where they need them.
"""

from pathlib import Path

__version__ = "0.1.0"


def requirements_file(name: str) -> str:
    """The path of ``requirements/NAME.txt`` of this package's source tree, absolute, so that an
    install hint works from any folder (a catkin workspace's ``src/cube_detect`` included);
    ``requirements/NAME.txt`` when the package runs from elsewhere (an install space)."""
    # In a catkin devel space this module is a shim whose __path__ also names the source folder.
    for folder in [Path(__file__).parent, *(Path(p) for p in globals().get("__path__", []))]:
        path = folder.resolve().parents[1] / "requirements" / f"{name}.txt"
        if path.is_file():
            return str(path)
    return f"requirements/{name}.txt"
