"""``python -m cube_detect doctor`` (also ``rosrun cube_detect cli doctor``): the master, the camera
service and one frame, then the ROS-free checks of cube_detect.doctor (model, backend,
detections), the protocol parameters and a running detector; one line per check. Without rospy
(a workstation without ROS) the ROS checks are reported as not run."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from typing import List, Optional, Tuple
from urllib.parse import urlparse

import numpy as np

from cube_detect.doctor import (
    BAD,
    INFO,
    OK,
    Check,
    detection_check,
    exit_code,
    frame_check,
    model_checks,
    sample_frame,
)
from cube_detect.errors import CameraError, ImageError
from cube_detect.images import imgmsg_to_bgr
from cube_detect.inference import DEFAULT_MODEL
from cube_detect.paramstore import ROBOT_READY_NAMES, ProtocolNames

try:  # the ROS checks need ROS; the local ones do not
    import rosgraph
    import rospy
    import rosservice

    from cube_detect.ros.camera import CameraClient
    from cube_detect.srv import GetImage
    ROS_MISSING = ""
except ImportError as _exc:
    ROS_MISSING = str(_exc)

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def _is_local_address(address: str) -> bool:
    """Whether this machine owns ``address`` (a socket can be bound to it)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
            probe.bind((address, 0))
        return True
    except OSError:
        return False


def master_checks(timeout: float) -> Tuple[List[Check], Optional[rosgraph.Master]]:
    uri = rosgraph.get_master_uri()
    master = rosgraph.Master("/cube_detect_doctor")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        pid = master.getPid()
    except (OSError, rosgraph.MasterException) as exc:
        # Not a ✗: the doctor may run on a workstation on purpose. Its own exit code says so.
        return [Check(INFO, "master", f"no ROS master at {uri} ({exc}); ROS checks not run (camera, protocol "
                                     "parameters, detector node). Start roscore on the robot, or point "
                                     "ROS_MASTER_URI at it: export ROS_MASTER_URI=http://<robot>:11311")], None
    finally:
        socket.setdefaulttimeout(previous)
    checks = [Check(OK, "master", f"{uri} answers (pid {pid})")]
    host = urlparse(uri).hostname or ""
    ros_ip, ros_hostname = os.environ.get("ROS_IP", ""), os.environ.get("ROS_HOSTNAME", "")
    remote = host not in _LOCAL_HOSTS and not host.startswith("127.") and host != socket.gethostname()
    if ros_ip and not _is_local_address(ros_ip):
        checks.append(Check(BAD, "ROS_IP", f"{ros_ip} is not an address of this machine: nodes would advertise "
                                           "an address nobody answers on; export ROS_IP=<this machine's address>"))
    elif remote and not (ros_ip or ros_hostname):
        checks.append(Check(BAD, "ROS_IP", f"the master is on {host} but neither ROS_IP nor ROS_HOSTNAME is set: "
                                           "the robot may not reach this machine's nodes back; export ROS_IP="
                                           "<this machine's address on the robot's network>"))
    else:
        checks.append(Check(OK, "ROS_IP", f"ROS_IP={ros_ip or '-'} ROS_HOSTNAME={ros_hostname or '-'}"
                                          + (" (remote master)" if remote else " (local master)")))
    return checks, master


def camera_checks(master: rosgraph.Master, service: str, timeout: float) -> Tuple[List[Check], Optional[np.ndarray]]:
    try:
        service_uri = master.lookupService(service)
    except rosgraph.MasterException:
        return [Check(BAD, "camera", f"no {service} service: start the robot's camera node (poppy_controllers), "
                                     "or `rosrun cube_detect sim_camera` without a robot")], None
    try:
        headers = rosservice.get_service_headers(service, service_uri)
    except (OSError, rosservice.ROSServiceException) as exc:
        return [Check(BAD, "camera", f"{service} at {service_uri} does not answer ({exc})")], None
    theirs, ours = headers.get("md5sum", "?"), GetImage._md5sum
    if theirs != ours:
        return [Check(BAD, "camera", f"{service} is a {headers.get('type', '?')} (md5 {theirs}), not "
                                     f"poppy_controllers/GetImage (md5 {ours}): point image_service:= at the "
                                     "camera service")], None
    checks = [Check(OK, "camera", f"{service}: {headers.get('type')} (md5 {ours}, as ours)")]
    try:
        msg = CameraClient(service, timeout, persistent=False).fetch()
    except CameraError as exc:
        return checks + [Check(BAD, "frame", str(exc))], None
    try:
        frame = imgmsg_to_bgr(msg)
    except ImageError as exc:
        if int(msg.width) == 0 or int(msg.height) == 0:
            return checks + [Check(BAD, "frame", f"{service} answered an empty image: camera disabled? (enable "
                                                 "it in the robot's configuration, or check its cable)")], None
        return checks + [Check(BAD, "frame", f"{exc}: this camera's encoding cannot be read")], None
    checks.append(frame_check(frame, f"{msg.encoding} from {service}"))
    return checks, frame


def run_ros_checks(service: str, timeout: float) -> Tuple[List[Check], Optional[np.ndarray], bool]:
    """(checks, a camera frame or None, whether the master answered)."""
    checks, master = master_checks(timeout)
    if master is None:
        return checks, None, False
    rospy.init_node("cube_detect_doctor", anonymous=True, disable_signals=True, disable_rosout=True)
    camera, frame = camera_checks(master, service, timeout)
    return checks + camera, frame, True


def protocol_checks() -> List[Check]:
    """The protocol parameters as they are now, and whether a detector node runs."""
    names = ProtocolNames()
    checks = []
    for name in (names.take_image, names.label) + ROBOT_READY_NAMES:
        value = rospy.get_param(name) if rospy.has_param(name) else None
        checks.append(Check(INFO, "parameter", f"{name} = {value!r}" if value is not None else f"{name} not set"))
    ready = [n for n in ROBOT_READY_NAMES if rospy.has_param(n)]
    if len(ready) > 1:
        checks.append(Check(INFO, "handshake", f"both {' and '.join(ready)} are set: the detector "
                                               "(robot_ready_param:=auto) writes both; the arm should use one"))
    state = rosgraph.Master("/cube_detect_doctor").getSystemState()
    detect_services = [(svc, nodes) for svc, nodes in state[2] if svc.endswith("/detect")]
    if detect_services:
        svc, nodes = detect_services[0]
        checks.append(Check(INFO, "detector", f"running: {', '.join(nodes)} (its service {svc})"))
    else:
        checks.append(Check(INFO, "detector", "no detector node running (roslaunch cube_detect detect.launch)"))
    return checks


def diagnose(model: Path, image_service: str, annotated: Path, timeout: float) -> Tuple[List[Check], bool]:
    """Every check, and whether the ROS checks ran."""
    checks: List[Check] = []
    frame = None
    ros_ran = False
    if ROS_MISSING:
        checks.append(Check(INFO, "ROS", f"ROS checks not run: {ROS_MISSING} (source the workspace's "
                                         "devel/setup.bash)"))
    else:
        ros_checks, frame, ros_ran = run_ros_checks(image_service, timeout)
        checks += ros_checks
    local, detector = model_checks(model)
    checks += local
    if frame is None:
        frame = sample_frame()
        checks.append(frame_check(frame, "a synthetic sample frame (no camera frame)", advise=False))
    if detector is not None:
        checks.append(detection_check(detector, frame, annotated))
    if ros_ran:
        checks += protocol_checks()
    return checks, ros_ran


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help=f"the model the detector loads (detect.launch model:=...; default the shipped "
                             f"{DEFAULT_MODEL.name})")
    parser.add_argument("--image-service", default="/get_image", help="camera service (default /get_image)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the master and the camera")
    parser.add_argument("--annotated", type=Path, default=Path("cube_detect_doctor.png"),
                        help="where to save the frame with its detections (default ./cube_detect_doctor.png)")


def run(args: argparse.Namespace) -> int:
    checks, ros_ran = diagnose(args.model or DEFAULT_MODEL, args.image_service, args.annotated, args.timeout)
    for check in checks:
        print(check.line(), flush=True)
    code = exit_code(checks, ros_ran)
    bad = sum(c.mark == BAD for c in checks)
    verdict = (f"{bad} problem(s)" if bad
               else "no problem found" + ("" if ros_ran else ", but the ROS checks did not run"))
    print(f"doctor: {verdict} (exit {code})")
    return code
