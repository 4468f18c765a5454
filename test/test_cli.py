"""The CLI: help without TensorFlow, one-line errors with exit 2."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "cube_detect", *args], capture_output=True, text=True)


def test_help_of_a_robot_side_command_does_not_load_tensorflow():
    code = ("import sys\nfrom cube_detect.cli import main\ntry:\n    main(['detect', '--help'])\n"
            "except SystemExit:\n    pass\nsys.exit(3 if 'tensorflow' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, "detect --help imported TensorFlow"
    assert "--threshold" in proc.stdout


def test_every_command_has_help():
    for command in ("synth", "stats", "train", "export", "check", "evaluate", "robustness", "detect"):
        proc = run(command, "--help")
        assert proc.returncode == 0 and "usage:" in proc.stdout, command


def test_bad_input_is_one_error_line_and_exit_2(tmp_path):
    proc = run("detect", str(tmp_path / "missing.png"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.png'}: no such image or folder"]
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((480, 640, 3), np.uint8))
    bad_model = tmp_path / "m.tflite"
    bad_model.write_bytes(b"junk")
    proc = run("detect", str(tmp_path / "frame.png"), "--model", str(bad_model))
    assert proc.returncode == 2 and "m.json" in proc.stderr.strip().splitlines()[-1]
