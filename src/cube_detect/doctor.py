"""The checks of ``python -m cube_detect doctor`` that need no ROS (the command itself, with the
master, camera and protocol checks, is cube_detect.ros.doctor): the one command a workshop runs
when a cell misbehaves.

Each check is one line: ✓ (fine), ✗ (wrong, with the fix) or ℹ (a figure to read). Checks, in
the order things depend on each other: the ROS master (and ROS_MASTER_URI / ROS_IP), the camera
service (its type's md5 against ours), one frame (encoding, size, brightness, blur; an empty
image means a disabled camera), the model the detector would load and its sidecar, the
backend (the Edge TPU probed in a child process: a delegate that crashes kills the child, not
the doctor), the detections on that frame (an annotated PNG is saved), the protocol parameters
and whether a detector node already runs. With no master the local checks still run on a
synthetic frame, and the ROS checks are reported as not run.

Exit code: 0 when every check ran and none is ✗; 1 when one is ✗; 3 when there is no ✗ but the
ROS checks could not run (no master, or no rospy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from cube_detect.errors import CubeDetectError
from cube_detect.inference import DecodeSettings, Detector, load_detector
from cube_detect.visualize import draw_detections

OK, BAD, INFO = "✓", "✗", "ℹ"
#: Exit code when nothing is wrong but the ROS checks did not run.
EXIT_NO_ROS = 3
#: A frame darker than this (mean gray level) or with less detail (variance of the Laplacian)
#: than this is worth a look: dim cells and out-of-focus cameras are the usual suspects.
DARK_LEVEL, BLUR_LEVEL = 40.0, 30.0


@dataclass(frozen=True)
class Check:
    mark: str  # OK, BAD or INFO
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.mark} {self.name}: {self.detail}"


def frame_figures(bgr: np.ndarray) -> Tuple[float, float]:
    """(mean brightness 0-255, sharpness = variance of the Laplacian) of a BGR frame."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    return float(gray.mean()), float(cv2.Laplacian(gray, cv2.CV_64F).var())


def frame_check(bgr: np.ndarray, source: str, advise: bool = True) -> Check:
    brightness, sharpness = frame_figures(bgr)
    advice = []
    if advise and brightness < DARK_LEVEL:
        advice.append("dark: more light, or the camera's exposure")
    if advise and sharpness < BLUR_LEVEL:
        advice.append("little detail: out of focus or moving?")
    return Check(INFO, "frame", f"{source}: {bgr.shape[1]}x{bgr.shape[0]}, brightness {brightness:.0f}/255, "
                                f"sharpness {sharpness:.0f}" + (f" ({'; '.join(advice)})" if advice else ""))


def probe_backend(model: Path, timeout: float = 120.0) -> Tuple[Check, str]:
    """Load the model as the node would (``backend=auto``) in a child process, so that an Edge
    TPU delegate that crashes takes the child down, not us. Returns the check and the backend."""
    code = ("import json, sys\nfrom cube_detect.inference import load_detector\n"
            "d = load_detector(sys.argv[1], backend='auto')\n"
            "print(json.dumps({'backend': d.backend, 'reason': d.backend_reason}))")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Check(BAD, "backend", f"loading {model.name} took over {timeout:.0f} s (a hung Edge TPU? "
                                     "unplug and replug the stick)"), "cpu"
    if proc.returncode < 0:
        return Check(BAD, "backend", f"loading {model.name} crashed the process (signal {-proc.returncode}): the "
                                     "Edge TPU runtime (libedgetpu) or the stick is broken; reinstall the runtime, "
                                     "or remove the _edgetpu model to run on the CPU"), "cpu"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return Check(BAD, "backend", f"cannot load {model.name}: {last}"), "cpu"
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    mark = OK if found["backend"] == "edgetpu" else INFO
    return Check(mark, "backend", found["reason"]), found["backend"]


def model_checks(model: Path) -> Tuple[List[Check], Optional[Detector]]:
    """The model and its sidecar, then the backend the node would get."""
    try:
        detector = load_detector(model, backend="cpu", decoding=DecodeSettings(max_cubes=10))
    except CubeDetectError as exc:
        return [Check(BAD, "model", f"{exc} (retrain or copy the .tflite with its .json sidecar)")], None
    spec = detector.spec
    classes = ", ".join(f"{k} {v}" for k, v in sorted(spec.labels.items()))
    checks = [Check(OK, "model", f"{model} ({model.stat().st_size} bytes); classes {classes}; "
                                 f"default threshold {spec.threshold:.2f}; input {spec.width}x{spec.height}, "
                                 f"{spec.channels} channel(s)")]
    backend_check, _ = probe_backend(model)
    checks.append(backend_check)
    return checks, detector


def detection_check(detector: Detector, bgr: np.ndarray, annotated: Path) -> Check:
    found = detector.detect(bgr)
    cv2.imwrite(str(annotated), draw_detections(bgr, found))
    labels = " ".join(f"{d.label}({d.score:.2f})" for d in found) or "none"
    return Check(INFO, "detections", f"{len(found)} at threshold {detector.threshold:.2f}, left to right: "
                                     f"{labels}; picture: {annotated}")


def sample_frame() -> np.ndarray:
    """A synthetic scene (our generator's digits: no data needed) when no camera can be asked."""
    from cube_detect.synth import render_indexed

    return render_indexed(5, 0, family="topdown")[0]


def exit_code(checks: List[Check], ros_ran: bool) -> int:
    if any(c.mark == BAD for c in checks):
        return 1
    return 0 if ros_ran else EXIT_NO_ROS
