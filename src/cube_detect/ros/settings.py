"""One settings table per node: its private parameters, their types, defaults and docs.

Each field of a table is one private parameter ``~name`` of the node: its type, the default
the node uses when the parameter is not set, and ``doc``. The detector's decoding parameters
are inference's ``DecodeSettings`` fields, inherited (a new one is one field there). The launch
files pass them as
``<arg>``s of the same names, defaults and docs, and the README's ``detect.launch`` table lists
them (test/test_node_settings.py checks both). Nodes read a table with
``read_settings(Table, rospy.get_param)``, which converts each value to the field's type.

ROS-free, so that tests and tools can read the tables without a ROS installation.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Type, TypeVar

from cube_detect.images import ROBOT_ENCODING, SUPPORTED_ENCODINGS, UNREADABLE_ENCODING
from cube_detect.inference import DecodeSettings
from cube_detect.paramstore import ROBOT_READY_NAMES, ProtocolNames, parse_bool

S = TypeVar("S")

#: Seconds per camera call: the detector's ``camera_timeout`` default, and the capture node's.
CAMERA_TIMEOUT_S = 5.0
#: ``launch`` value of a setting whose launch argument has no default (roslaunch requires it).
REQUIRED = "(required)"
#: The shipped model, as the launch files name it.
SHIPPED_MODEL_ARG = "$(find cube_detect)/models/cube_detect.tflite"
#: What an optional name or path is set to when it is not used (a launch argument with an empty
#: default is listed as required by ``roslaunch --ros-args``); "" means the same.
NONE = "none"
#: ``robot_ready_param`` default: /RobotReady or /robotReady, whichever the controller has set.
AUTO = "auto"
#: Threshold doc shared by the nodes: 0 = the model's calibrated threshold (sidecar ``threshold``).
THRESHOLD_DOC = "score threshold; 0 = the model's own (the threshold its export calibrated, in its .json sidecar)"
IMAGE_TOPIC_DOC = ("sensor_msgs/Image topic to take frames from instead of the camera service, "
                   "e.g. /usb_cam/image_raw; none = the service")
IMAGE_MAX_AGE_DOC = "s: the newest frame of image_topic is used only if it arrived less than this ago"


def optional(value: str) -> str:
    """``value``, or "" when it says "none" (or is empty): an unused name or path."""
    return "" if value.strip().lower() in ("", NONE) else value


def resolve_user_path(value: str, env: Optional[Mapping[str, str]] = None,
                      cwd: Optional[str] = None) -> Tuple[str, str]:
    """A path given to a node, as the user meant it: ``(path, note)``.

    roslaunch runs its nodes in ~/.ros (ROS_HOME), not where it was started, but it passes on
    the shell's environment, whose ``$PWD`` is the directory it was started from: a relative
    path is resolved against ``$PWD`` (rosrun: the same as the working directory), else
    against the working directory. ``~`` is expanded. ``note`` says how a relative path was
    resolved (for the node's log and its error messages); "" for an absolute one.
    """
    if not value:
        return value, ""
    env = os.environ if env is None else env
    cwd = cwd or os.getcwd()
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded, ""
    shell_dir = env.get("PWD", "")
    if shell_dir and os.path.isabs(shell_dir) and os.path.isdir(shell_dir) and \
            os.path.realpath(shell_dir) != os.path.realpath(cwd):
        resolved = str(Path(shell_dir) / expanded)
        return resolved, (f"{value} is relative: resolved against {shell_dir}, the directory roslaunch was "
                          f"started from ($PWD; the node runs in {cwd})")
    return str(Path(cwd) / expanded), f"{value} is relative: resolved against the working directory {cwd}"


def setting(default: Any, doc: str, *, launch: str = "") -> Any:
    """A settings field: ``default`` when the parameter is not set, ``doc`` what it means.

    ``launch``: the launch file's default when it is not ``default`` written out (a
    ``$(find ...)`` path, or REQUIRED).
    """
    return dataclasses.field(default=default, metadata={"doc": doc, "launch": launch})


def doc_of(item: dataclasses.Field) -> str:
    return str(item.metadata["doc"])


def launch_default(item: dataclasses.Field) -> str:
    """The field's default as a launch file writes it: ``20``, ``0.5``, ``true``, ``/get_image``."""
    if item.metadata.get("launch"):
        return str(item.metadata["launch"])
    value = item.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _convert(value: Any, kind: Any, name: str) -> Any:
    """``value`` as a ``kind`` (bool, int, float, str); ValueError naming the parameter."""
    if kind is bool:
        return bool(parse_bool(value, name))
    if kind is str:
        return "" if value is None else str(value)
    try:
        number = float(value)  # 20, 0.5, or the strings "20", "0.5"
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or math.isnan(number) or (kind is int and not number.is_integer()):
        raise ValueError(f"parameter {name}: {value!r} is not {'an integer' if kind is int else 'a number'}")
    return int(number) if kind is int else number


def read_settings(table: Type[S], get_param: Callable[[str, Any], Any], prefix: str = "~") -> S:
    """An instance of ``table`` read through ``get_param(prefix + field, default)``, typed."""
    hints = typing.get_type_hints(table)
    values: Dict[str, Any] = {}
    for item in dataclasses.fields(table):  # type: ignore[arg-type]
        name = prefix + item.name
        values[item.name] = _convert(get_param(name, item.default), hints[item.name], name)
    return table(**values)


@dataclass(frozen=True)
class ProtocolParams:
    """The protocol's three parameter names (cells differ: ``/robotReady`` in some)."""

    take_image_param: str = setting("/takeImage", "parameter the controller sets true to ask for an image")
    label_param: str = setting("/label", "parameter the detector sets to the class id of the next cube (0 = none)")
    robot_ready_param: str = setting("/RobotReady", "handshake parameter (/robotReady in some cells)")

    def protocol_names(self, resolve: Callable[[str], str] = str) -> ProtocolNames:
        """The names, each through ``resolve`` (the node's ``rospy.resolve_name``: remappings).

        ``robot_ready_param`` ``auto``: /RobotReady or /robotReady (ROBOT_READY_NAMES).
        """
        if self.robot_ready_param.strip().lower() == AUTO:
            first, *others = (resolve(name) for name in ROBOT_READY_NAMES)
            return ProtocolNames(take_image=resolve(self.take_image_param), label=resolve(self.label_param),
                                 robot_ready=first, robot_ready_alternatives=tuple(others))
        return ProtocolNames(take_image=resolve(self.take_image_param), label=resolve(self.label_param),
                             robot_ready=resolve(self.robot_ready_param))


@dataclass(frozen=True)
class DetectorSettings(ProtocolParams, DecodeSettings):
    """detector_node (detect.launch): the model, the decoding, the camera and the protocol.

    The decoding parameters (``max_cubes``, ``nms_iou``, ``sort_axis``, ...) are
    ``DecodeSettings``' fields, inherited; ``threshold`` is redeclared as a number (0 = the
    model's own), since a parameter cannot be None.
    """

    robot_ready_param: str = setting(AUTO, "handshake parameter; auto = /RobotReady or /robotReady, whichever "
                                           "the controller has set")
    model: str = setting("", "int8 .tflite model (its .json sidecar beside it); empty = the shipped one; "
                             "a relative path is resolved against the directory roslaunch was started from",
                         launch=SHIPPED_MODEL_ARG)
    edgetpu_model: str = setting(AUTO, "Edge TPU model; auto = the model's _edgetpu twin when it exists")
    labels: str = setting(NONE, "labels file (labels.txt or label_map.pbtxt) checked against the model; "
                                "none = no check")
    backend: str = setting("auto", "auto (Edge TPU when it works, else CPU), edgetpu or cpu")
    num_threads: int = setting(1, "CPU inference threads")
    threshold: float = setting(0.0, THRESHOLD_DOC)
    image_service: str = setting("/get_image", "camera service (poppy_controllers/GetImage)")
    image_topic: str = setting(NONE, IMAGE_TOPIC_DOC)
    image_max_age: float = setting(0.5, IMAGE_MAX_AGE_DOC)
    rate: float = setting(20.0, "safety-net polling rate, Hz: /takeImage and /RobotReady are read when the "
                                "master pushes a change, and this often anyway")
    robot_ready_timeout: float = setting(0.0, "s to wait for RobotReady true before abandoning a cycle; "
                                              "0 = forever")
    camera_timeout: float = setting(CAMERA_TIMEOUT_S, "s per camera call")
    camera_retries: int = setting(2, "extra attempts after a failed camera call")
    camera_retry_delay: float = setting(0.5, "s before the first retry, doubling after each")
    web: bool = setting(False, "true: serve the live view (last annotated frame, labels, protocol state) "
                               "on a read-only web page; its URL is printed")
    web_host: str = setting("127.0.0.1", "address of the live view (0.0.0.0: from a laptop, with a random "
                                         "?token= in the URL)")
    web_port: int = setting(8766, "port of the live view")

    def decode_settings(self) -> DecodeSettings:
        """The decoding parameters as inference's ``DecodeSettings`` (``threshold`` 0: None)."""
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(DecodeSettings)}
        return DecodeSettings(**{**values, "threshold": self.threshold or None})


@dataclass(frozen=True)
class CaptureSettings:
    """capture_node (capture.launch): where images go, how they are pre-annotated, what triggers."""

    dataset: str = setting("", "folder of the data set (train/ and test/ are created in it); a relative path is "
                               "resolved against the directory roslaunch was started from", launch=REQUIRED)
    image_service: str = setting("/get_image", "camera service (poppy_controllers/GetImage)")
    image_topic: str = setting(NONE, IMAGE_TOPIC_DOC)
    image_max_age: float = setting(0.5, IMAGE_MAX_AGE_DOC)
    test_share: float = setting(0.1, "share of the image numbers that go to test/")
    trigger_param: str = setting(NONE, "parameter that triggers a capture when true, set back to false once the "
                                       "image is saved (none = off)")
    interval: float = setting(0.0, "seconds between automatic captures (0 = off)")
    preview: bool = setting(True, "preview window (SPACE/s saves, q quits) when $DISPLAY is set")
    model: str = setting("", "pre-annotation model; empty = the shipped one", launch=SHIPPED_MODEL_ARG)
    annotate: bool = setting(True, "false: save images without pre-annotation XML")
    threshold: float = setting(0.0, "pre-annotation " + THRESHOLD_DOC)
    review: bool = setting(False, "true: also serve the review page of the data set while capturing")
    review_host: str = setting("127.0.0.1", "address the review page listens on (0.0.0.0: from another "
                                            "machine, with a token in its URL)")
    review_port: int = setting(8765, "port of the review page")


@dataclass(frozen=True)
class SimCameraSettings:
    """sim_camera, read once at start: what it serves, and where."""

    images: str = setting("", "folder of labelled images (VOC xml beside them); empty = synthetic scenes")
    seed: int = setting(0, "seed of the synthetic scenes")
    sort_axis: str = setting("x", "order of the published truth: x (left to right) or y")
    service: str = setting("/get_image", "name of the camera service it serves")


@dataclass(frozen=True)
class SimCameraFaults:
    """sim_camera, read at every call (tests change them live): how it answers."""

    encoding: str = setting(ROBOT_ENCODING, f"{ROBOT_ENCODING} (the real robot) or another of "
                                            f"{', '.join(SUPPORTED_ENCODINGS[1:])}; {UNREADABLE_ENCODING}: "
                                            "one the nodes cannot read")
    empty: bool = setting(False, "true: answer an empty image (camera disabled)")
    blank: bool = setting(False, "true: answer a dark 640x480 scene with no cube (truth: no labels)")
    hold: bool = setting(False, "true: answer the last served scene again (same scene, other encodings)")
    fail: bool = setting(False, "true: the service call fails")
    delay: float = setting(0.0, "seconds to wait before answering")


@dataclass(frozen=True)
class SimControllerSettings(ProtocolParams):
    """sim_controller (demo.launch): the simulated arm's cycles and where it reads the truth."""

    cycles: int = setting(5, "protocol cycles to run")
    move_time: float = setting(0.2, "s the simulated arm takes per cube")
    rate: float = setting(20.0, "parameter polling rate, Hz")
    cycle_timeout: float = setting(30.0, "s a cycle may take before it counts as not completed")
    ready_timeout: float = setting(120.0, "s to wait for the detector's ~ready and the camera service")
    faces_topic: str = setting("/detector/faces", "the detector's sorted faces (how many cubes a cycle has)")
    ready_topic: str = setting("/detector/ready", "the detector's ready flag")
    image_service: str = setting("/get_image", "camera service, waited for before the first cycle")
    expected_param: str = setting("/sim_camera/last_labels", "the simulated camera's true sorted labels")
    require_all_correct: bool = setting(False, "true: exit 1 unless every cycle's labels are right")
    result_file: str = setting("", "also write the JSON summary there (make demo reads it); empty = none")


#: The settings table(s) of each node type (scripts/ name): what its launch <param>s may be.
NODE_SETTINGS: Dict[str, typing.Tuple[type, ...]] = {
    "detector_node": (DetectorSettings,),
    "capture_node": (CaptureSettings,),
    "sim_camera": (SimCameraSettings, SimCameraFaults),
    "sim_controller": (SimControllerSettings,),
}
