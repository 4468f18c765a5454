"""`python -m cube_detect doctor` without a master: the local install and a sample frame are
still checked, the ROS checks are said not to have run, and the exit code is its own (3); a
broken model is a ✗ with its reason (exit 1). The ROS side: test/doctor.test."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.procs import free_port

ROOT = Path(__file__).resolve().parent.parent


def doctor(tmp_path, *args):
    env = dict(os.environ, ROS_MASTER_URI=f"http://127.0.0.1:{free_port()}")
    proc = subprocess.run([sys.executable, "-m", "cube_detect", "doctor", "--annotated", str(tmp_path / "d.png"),
                           *args], capture_output=True, text=True, env=env, timeout=180)
    return proc.returncode, proc.stdout.splitlines()


def test_without_a_master_the_local_checks_run_and_the_exit_code_says_so(tmp_path):
    code, lines = doctor(tmp_path)
    assert code == 3, lines
    assert lines[0].startswith("ℹ master: no ROS master at http://127.0.0.1:") and "ROS checks not run" in lines[0]
    assert any(ln.startswith("✓ model: ") and "default threshold" in ln for ln in lines)
    assert any(ln.startswith("ℹ backend: cpu via") for ln in lines)
    assert any(ln.startswith("ℹ frame: a synthetic sample frame") for ln in lines)
    assert any(ln.startswith("ℹ detections: ") for ln in lines) and (tmp_path / "d.png").is_file()
    assert lines[-1] == "doctor: no problem found, but the ROS checks did not run (exit 3)"
    assert all(ln[:2] in ("✓ ", "✗ ", "ℹ ") for ln in lines[:-1]), lines


def test_a_model_that_does_not_load_is_a_problem_with_its_reason(tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copy(ROOT / "models" / "cube_detect.tflite", model)  # no sidecar beside it
    code, lines = doctor(tmp_path, "--model", str(model))
    assert code == 1, lines
    bad = [ln for ln in lines if ln.startswith("✗ model: ")]
    assert len(bad) == 1 and "m.json" in bad[0] and "sidecar" in bad[0]
    assert lines[-1] == "doctor: 1 problem(s) (exit 1)"
