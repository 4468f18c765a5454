"""tools/test_arm64.py's verdict on two ``detect --json`` results (x86 and the arm64 root)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("test_arm64_tool", ROOT / "tools" / "test_arm64.py")
assert _spec is not None and _spec.loader is not None
arm64 = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = arm64  # its dataclasses look their module up
_spec.loader.exec_module(arm64)


def result(image, *detections):
    return {"image": f"/somewhere/{image}", "detections": [{"label": label, "id": 1, "score": 0.9, "box": list(box)}
                                                           for label, box in detections]}


def test_same_labels_and_boxes_within_a_pixel_or_a_quantization_step_match():
    x86 = [result("a.png", ("one", (10, 10, 50, 50)), ("two", (60, 10, 90, 50)))]
    robot = [result("a.png", ("one", (10.9, 10, 50, 50)), ("two", (60, 10, 91.6, 50)))]
    assert arm64.compare(x86, robot, {"a.png": 1.6}) == ([], pytest.approx(1.6))
    problems, worst = arm64.compare(x86, robot)  # no step known: 1 px
    assert worst == pytest.approx(1.6) and problems == [
        "a.png: two box [60, 10, 91.6, 50] on the robot, [60, 10, 90, 50] on x86 (1.6 px > 1.0)"]


def test_other_labels_order_or_missing_images_are_problems():
    x86 = [result("a.png", ("one", (10, 10, 50, 50)), ("two", (60, 10, 90, 50))),
           result("b.png", ("one", (1, 1, 9, 9)))]
    robot = [result("a.png", ("two", (60, 10, 90, 50)), ("one", (10, 10, 50, 50))), result("c.png")]
    problems, _ = arm64.compare(x86, robot)
    assert problems == ["a.png: labels ['two', 'one'] on the robot, ['one', 'two'] on x86",
                        "b.png: no result on the robot", "c.png: not in the x86 results"]


def test_a_frame_x86_finds_nothing_in_proves_nothing():
    problems, _ = arm64.compare([result("a.png")], [result("a.png")])
    assert problems == ["a.png: x86 finds no cube: nothing to compare"]


def test_robot_tests_are_py38s_selection():
    tests = arm64.robot_tests()
    assert "test/test_inference.py" in tests and all((ROOT / t).is_file() for t in tests)


def test_the_pi4_cpuinfo_names_four_cortex_a72_cores():
    assert arm64.CPUINFO.count("CPU part\t: 0xd08") == 4 and "Raspberry Pi 4" in arm64.CPUINFO
