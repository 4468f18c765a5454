"""One settings table per node: its private parameters, their types, defaults and docs.

Each field of a table is one private parameter ``~name`` of the node: its type, the default
the node uses when the parameter is not set, and ``doc``. The launch files pass them as
``<arg>``s of the same names, defaults and docs, and the README's ``detect.launch`` table lists
them (test/test_node_settings.py checks both). Nodes read a table with
``read_settings(Table, rospy.get_param)``, which converts each value to the field's type.

ROS-free, so that tests and tools can read the tables without a ROS installation.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Type, TypeVar

from cube_detect.protocol import ProtocolNames, parse_bool

S = TypeVar("S")

#: Seconds per camera call: the detector's ``camera_timeout`` default, and the capture node's.
CAMERA_TIMEOUT_S = 5.0
#: ``launch`` value of a setting whose launch argument has no default (roslaunch requires it).
REQUIRED = "(required)"
#: The shipped model, as the launch files name it.
SHIPPED_MODEL_ARG = "$(find cube_detect)/models/cube_detect.tflite"


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

    def protocol_names(self) -> ProtocolNames:
        return ProtocolNames(take_image=self.take_image_param, label=self.label_param,
                             robot_ready=self.robot_ready_param)


@dataclass(frozen=True)
class DetectorSettings(ProtocolParams):
    """detector_node (detect.launch): the model, the camera and the protocol."""

    model: str = setting("", "int8 .tflite model (its .json sidecar beside it); empty = the shipped one",
                         launch=SHIPPED_MODEL_ARG)
    edgetpu_model: str = setting("", "Edge TPU model; empty = the model's _edgetpu twin when it exists")
    labels: str = setting("", "labels file (labels.txt or label_map.pbtxt) checked against the model; "
                              "empty = none")
    backend: str = setting("auto", "auto (Edge TPU when it works, else CPU), edgetpu or cpu")
    num_threads: int = setting(1, "CPU inference threads")
    threshold: float = setting(0.5, "detection score threshold")
    max_cubes: int = setting(4, "most faces reported per image")
    sort_axis: str = setting("x", "x: left to right; y: top to bottom (camera mounted sideways)")
    image_service: str = setting("/get_image", "camera service (poppy_controllers/GetImage)")
    rate: float = setting(20.0, "parameter polling rate, Hz")
    robot_ready_timeout: float = setting(0.0, "s to wait for RobotReady true before abandoning a cycle; "
                                              "0 = forever")
    camera_timeout: float = setting(CAMERA_TIMEOUT_S, "s per camera call")
    camera_retries: int = setting(2, "extra attempts after a failed camera call")
    camera_retry_delay: float = setting(0.5, "s before the first retry, doubling after each")


@dataclass(frozen=True)
class CaptureSettings:
    """capture_node (capture.launch): where images go, how they are pre-annotated, what triggers."""

    dataset: str = setting("", "folder of the data set (train/ and test/ are created in it)", launch=REQUIRED)
    image_service: str = setting("/get_image", "camera service (poppy_controllers/GetImage)")
    test_share: float = setting(0.1, "share of the image numbers that go to test/")
    trigger_param: str = setting("", "parameter that triggers a capture when true, then reset to false "
                                     "(empty = off)")
    interval: float = setting(0.0, "seconds between automatic captures (0 = off)")
    preview: bool = setting(True, "preview window (SPACE/s saves, q quits) when $DISPLAY is set")
    model: str = setting("", "pre-annotation model; empty = the shipped one", launch=SHIPPED_MODEL_ARG)
    annotate: bool = setting(True, "false: save images without pre-annotation XML")
    threshold: float = setting(0.5, "score threshold of the pre-annotation")


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

    encoding: str = setting("8UC3", "8UC3 (the real robot), bgr8, rgb8, mono8, 8UC1, bgra8 or rgba8")
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
