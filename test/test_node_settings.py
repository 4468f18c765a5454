"""The nodes' settings tables (cube_detect.ros.settings) against the launch files and the README.

Each node reads its private parameters from one dataclass; launch/detect.launch and
launch/capture.launch pass the same names with the same defaults and docs, and the README's
`detect.launch` table lists the same arguments and defaults. The detector's decoding parameters
are inference's DecodeSettings fields: a new one is one field there, one launch argument and one
README row, and these tests fail until all three are there.
"""

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cube_detect.inference import DecodeSettings
from cube_detect.paramstore import ProtocolNames
from cube_detect.ros.settings import (
    NODE_SETTINGS,
    REQUIRED,
    CaptureSettings,
    DetectorSettings,
    SimCameraFaults,
    SimControllerSettings,
    doc_of,
    launch_default,
    optional,
    read_settings,
    resolve_user_path,
)

ROOT = Path(__file__).resolve().parent.parent
# Arguments of the launch files that are about roslaunch, not the node's parameters.
LAUNCH_ONLY_ARGS = {"detect.launch": {"node_name", "required"}, "capture.launch": {"node_name"}}


def launch_args_and_params(launch: str, node_type: str):
    root = ET.parse(ROOT / "launch" / launch).getroot()
    args = {arg.get("name"): arg for arg in root.iter("arg")}
    (node,) = [n for n in root.iter("node") if n.get("pkg") == "cube_detect" and n.get("type") == node_type]
    params = {param.get("name"): param.get("value") for param in node.iter("param")}
    return args, params


@pytest.mark.parametrize("launch,node_type,table", [("detect.launch", "detector_node", DetectorSettings),
                                                    ("capture.launch", "capture_node", CaptureSettings)])
def test_launch_args_match_the_settings_table(launch, node_type, table):
    args, params = launch_args_and_params(launch, node_type)
    fields = {item.name: item for item in dataclasses.fields(table)}
    assert sorted(params) == sorted(fields), f"{launch}: <param>s vs {table.__name__}"
    assert sorted(args) == sorted(set(fields) | LAUNCH_ONLY_ARGS[launch]), f"{launch}: <arg>s"
    for name, item in fields.items():
        assert params[name] == f"$(arg {name})", f"{launch}: param {name}"
        arg = args[name]
        if launch_default(item) == REQUIRED:
            assert "default" not in arg.attrib, f"{launch}: arg {name} is required (no default)"
        else:
            assert arg.get("default") == launch_default(item), f"{launch}: default of arg {name}"
        assert arg.get("doc") == doc_of(item), f"{launch}: doc of arg {name}"


def test_every_param_given_to_our_nodes_is_in_their_settings_table():
    files = sorted((ROOT / "launch").glob("*.launch")) + sorted((ROOT / "test").glob("*.test"))
    checked = 0
    for path in files:
        for node in ET.parse(path).getroot().iter("node"):
            if node.get("pkg") != "cube_detect":
                continue
            known = {item.name for table in NODE_SETTINGS[node.get("type")] for item in dataclasses.fields(table)}
            for param in node.iter("param"):
                assert param.get("name") in known, f"{path.name}: {node.get('type')} has no ~{param.get('name')}"
                checked += 1
    assert checked > 30


def readme_table(heading: str):
    """{name: default} of the README table under ``heading`` (`` `""` `` read as empty)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    rows = {}
    for line in section.splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z_]+)`", cells[0]) if len(cells) == 3 else None
        if match:
            rows[match.group(1)] = "" if cells[1] == '`""`' else cells[1].strip("`")
    return rows


def test_readme_detect_launch_table_lists_the_launch_args_and_defaults():
    args, _ = launch_args_and_params("detect.launch", "detector_node")
    assert readme_table("### `detect.launch` arguments") == {name: arg.get("default") for name, arg in args.items()}


def test_readme_capture_launch_table_lists_the_launch_args_and_defaults():
    args, _ = launch_args_and_params("capture.launch", "capture_node")
    expected = {name: arg.get("default", REQUIRED) for name, arg in args.items()}
    assert readme_table("### `capture.launch` arguments") == expected


@pytest.mark.parametrize("launch", ["detect.launch", "capture.launch"])
def test_roslaunch_ros_args_lists_only_what_is_really_required(launch):
    """`roslaunch --ros-args` calls every argument with an empty default "required"."""
    root = ET.parse(ROOT / "launch" / launch).getroot()
    required = sorted(arg.get("name") for arg in root.iter("arg") if not arg.get("default") and not arg.get("value"))
    assert required == (["dataset"] if launch == "capture.launch" else [])


def test_every_decoding_setting_is_a_detector_parameter_launch_argument_and_readme_row():
    decoding = [item.name for item in dataclasses.fields(DecodeSettings)]
    assert {"threshold", "max_cubes", "nms_iou", "sort_axis"} <= set(decoding)
    args, params = launch_args_and_params("detect.launch", "detector_node")
    readme = readme_table("### `detect.launch` arguments")
    node = {item.name: item for item in dataclasses.fields(DetectorSettings)}
    for name in decoding:
        assert name in node and name in params and name in args and name in readme, name
        assert readme[name] == args[name].get("default") == launch_default(node[name]), name
    # The node's defaults are decode's (threshold 0 = None: the model's own), and a parameter
    # reaches decode's settings unchanged.
    assert DetectorSettings().decode_settings() == DecodeSettings()
    given = {"~nms_iou": "0.6", "~max_cubes": 9, "~sort_axis": "y", "~threshold": 0.3}
    settings = read_settings(DetectorSettings, lambda name, default: given.get(name, default))
    assert settings.decode_settings() == DecodeSettings(threshold=0.3, max_cubes=9, nms_iou=0.6, sort_axis="y")
    assert type(settings.decode_settings()) is DecodeSettings


def test_thresholds_default_to_the_models_own():
    assert DetectorSettings().threshold == 0.0 and CaptureSettings().threshold == 0.0
    assert "the model's own" in doc_of(next(f for f in dataclasses.fields(DetectorSettings) if f.name == "threshold"))


def test_auto_handshake_names_and_remapping():
    names = DetectorSettings().protocol_names()
    assert names == ProtocolNames(robot_ready="/RobotReady", robot_ready_alternatives=("/robotReady",))
    assert names.handshake_candidates == ("/RobotReady", "/robotReady")
    remapped = DetectorSettings().protocol_names(lambda name: "/cell" + name)
    assert remapped.handshake_candidates == ("/cell/RobotReady", "/cell/robotReady")
    assert remapped.take_image == "/cell/takeImage"
    one = DetectorSettings(robot_ready_param="/robotReady").protocol_names()
    assert one.handshake_candidates == ("/robotReady",)
    assert SimControllerSettings().protocol_names().robot_ready == "/RobotReady"  # the arm's side: one name


@pytest.mark.parametrize("value,expected", [("none", ""), ("None", ""), ("", ""), (" none ", ""), ("/snap", "/snap")])
def test_optional(value, expected):
    assert optional(value) == expected


def test_relative_paths_resolve_against_the_directory_roslaunch_was_started_from(tmp_path):
    """roslaunch runs nodes in ~/.ros; the shell's $PWD (passed on) is where the user typed."""
    repo, ros_home = tmp_path / "repo", tmp_path / ".ros"
    repo.mkdir()
    ros_home.mkdir()
    path, note = resolve_user_path("models/m.tflite", env={"PWD": str(repo)}, cwd=str(ros_home))
    assert path == str(repo / "models" / "m.tflite")
    assert note == (f"models/m.tflite is relative: resolved against {repo}, the directory roslaunch was started "
                    f"from ($PWD; the node runs in {ros_home})")
    # rosrun from the shell: $PWD is the working directory
    assert resolve_user_path("m.tflite", env={"PWD": str(repo)}, cwd=str(repo)) == (
        str(repo / "m.tflite"), f"m.tflite is relative: resolved against the working directory {repo}")
    # no usable $PWD: the working directory
    assert resolve_user_path("m.tflite", env={}, cwd=str(ros_home))[0] == str(ros_home / "m.tflite")
    assert resolve_user_path("m.tflite", env={"PWD": "relative/x"}, cwd=str(ros_home))[0] == str(ros_home / "m.tflite")
    # absolute paths and ~ are left as meant
    assert resolve_user_path(str(repo / "m.tflite"), env={"PWD": "/"}, cwd="/") == (str(repo / "m.tflite"), "")
    assert resolve_user_path("~/m.tflite", env={}, cwd="/")[0] == str(Path.home() / "m.tflite")
    assert resolve_user_path("", env={}, cwd="/") == ("", "")


def test_read_settings_types_the_values_and_names_a_bad_one():
    given = {"~rate": "10", "~num_threads": 3.0, "~threshold": 1, "~labels": None, "~sort_axis": "y"}
    settings = read_settings(DetectorSettings, lambda name, default: given.get(name, default))
    assert (settings.rate, settings.num_threads, settings.threshold) == (10.0, 3, 1.0)
    assert isinstance(settings.rate, float) and isinstance(settings.num_threads, int)
    assert (settings.labels, settings.sort_axis, settings.image_service) == ("", "y", "/get_image")
    assert settings.protocol_names().handshake_candidates == ("/RobotReady", "/robotReady")
    faults = read_settings(SimCameraFaults, lambda name, default: {"~fail": "true", "~empty": 0}.get(name, default))
    assert (faults.fail, faults.empty, faults.delay) == (True, False, 0.0)
    for value, kind in (("fast", "a number"), (True, "a number")):
        with pytest.raises(ValueError, match=f"parameter ~rate: .* is not {kind}"):
            read_settings(DetectorSettings, lambda name, default, v=value: v if name == "~rate" else default)
    with pytest.raises(ValueError, match="parameter ~max_cubes: 2.5 is not an integer"):
        read_settings(DetectorSettings, lambda name, default: 2.5 if name == "~max_cubes" else default)
