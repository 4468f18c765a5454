"""What scripts/ run: a node's ``main()``, a missing Python module being one line, never a traceback.

A robot set up by hand (its own catkin workspace, ``rosdep`` or ``pip`` only half done) lacks a
module now and then: the node says which, and how to install it, in one line on stderr
(roslaunch shows it), and exits 2. Imports nothing but the standard library itself.
"""

from __future__ import annotations

import importlib
import sys
from typing import Dict

from cube_detect import requirements_file

#: module -> how to install it (Debian / Ubuntu package; pip where that is the way).
HINTS: Dict[str, str] = {
    "lxml": "sudo apt install python3-lxml",
    "cv2": "sudo apt install python3-opencv",
    "numpy": "sudo apt install python3-numpy",
    "tqdm": "sudo apt install python3-tqdm",
    "yaml": "sudo apt install python3-yaml",
    "cv_bridge": "sudo apt install ros-noetic-cv-bridge (Noetic) or python3-cv-bridge (Debian)",
    "rospy": "sudo apt install ros-noetic-rospy (Noetic) or python3-rospy (Debian)",
    "rospkg": "sudo apt install python3-rospkg",
    "rosgraph": "sudo apt install ros-noetic-rosgraph (Noetic) or python3-rosgraph (Debian)",
    "ai_edge_litert": f"pip install -r {requirements_file('runtime')}",
    "tflite_runtime": f"pip install -r {requirements_file('runtime')}",
    "flask": f"pip install -r {requirements_file('review')}",
}
ALL = ("rosdep install --from-paths src --ignore-src (every package package.xml declares), "
       f"then pip install -r {requirements_file('runtime')}")


def missing_module_line(node: str, exc: ModuleNotFoundError) -> str:
    """``detector_node: cannot start: Python module 'lxml' is missing (sudo apt install ...; ...)``."""
    module = (exc.name or str(exc)).split(".")[0]
    if module == "cube_detect" or module.startswith("cube_detect"):
        hint = "source the workspace's devel/setup.bash (or tools/env.sh), or catkin_make first"
    else:
        hint = f"{HINTS[module]}; or all at once: {ALL}" if module in HINTS else f"install it; or all at once: {ALL}"
    return f"{node}: cannot start: Python module '{module}' is missing ({hint})"


def run(module: str, node: str) -> None:
    """Import ``module`` and run its ``main()``; a missing module is one line and exit 2."""
    try:
        main = importlib.import_module(module).main
        main()
    except ModuleNotFoundError as exc:
        sys.stderr.write(missing_module_line(node, exc) + "\n")
        sys.stderr.flush()
        raise SystemExit(2) from None
