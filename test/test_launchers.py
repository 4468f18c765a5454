"""scripts/: a missing Python module is one line naming it and how to install it, never a traceback
(issue 11: a robot set up by hand, without lxml, died with a ModuleNotFoundError traceback)."""

import subprocess
import sys
from pathlib import Path

import pytest

from cube_detect.ros.launcher import missing_module_line

ROOT = Path(__file__).resolve().parent.parent


def run_script(script, blocked):
    """Run scripts/``script`` as roslaunch does, with the module ``blocked`` missing."""
    code = (f"import sys; sys.modules[{blocked!r}] = None; sys.argv = [{script!r}]; "
            f"exec(compile(open({str(ROOT / 'scripts' / script)!r}).read(), {script!r}, 'exec'))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script,blocked,hint", [
    ("capture_node", "lxml", "sudo apt install python3-lxml"),
    ("detector_node", "cv2", "sudo apt install python3-opencv"),
    ("sim_camera", "numpy", "sudo apt install python3-numpy"),
])
def test_a_missing_module_is_one_line_naming_it(script, blocked, hint):
    done = run_script(script, blocked)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"{script}: cannot start: Python module '{blocked}' is missing ({hint}; or all at once: rosdep install "
        "--from-paths src --ignore-src (every package package.xml declares), then pip install -r "
        f"{ROOT / 'requirements' / 'runtime.txt'})"]  # an absolute path: right from any folder


def test_the_workspace_not_sourced_is_one_line_too():
    done = run_script("detector_node", "cube_detect.ros.launcher")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("detector_node: cannot start: Python module 'cube_detect.ros.launcher' is missing "
                                   "(source the workspace's devel/setup.bash, or tools/env.sh)")


def test_hint_for_an_unknown_module_and_for_cube_detect_itself():
    assert missing_module_line("x", ModuleNotFoundError("no", name="foo.bar")).startswith(
        "x: cannot start: Python module 'foo' is missing (install it; or all at once: rosdep install")
    assert "source the workspace" in missing_module_line("x", ModuleNotFoundError("no", name="cube_detect.msg"))


def test_package_xml_declares_what_the_nodes_import():
    """rosdep install --from-paths src --ignore-src must install every system package the nodes need."""
    text = (ROOT / "package.xml").read_text()
    for key in ("rospy", "cv_bridge", "python3-numpy", "python3-opencv", "python3-lxml", "python3-tqdm",
                "python3-rospkg", "rosgraph", "sensor_msgs", "std_msgs", "std_srvs", "message_runtime"):
        assert f">{key}</" in text, key
