"""The nodes' settings tables (cube_detect.ros.settings) against the launch files and the README.

Each node reads its private parameters from one dataclass; launch/detect.launch and
launch/capture.launch pass the same names with the same defaults and docs, and the README's
`detect.launch` table lists the same arguments and defaults.
"""

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cube_detect.ros.settings import (
    NODE_SETTINGS,
    REQUIRED,
    CaptureSettings,
    DetectorSettings,
    SimCameraFaults,
    doc_of,
    launch_default,
    read_settings,
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


def test_read_settings_types_the_values_and_names_a_bad_one():
    given = {"~rate": "10", "~num_threads": 3.0, "~threshold": 1, "~labels": None, "~sort_axis": "y"}
    settings = read_settings(DetectorSettings, lambda name, default: given.get(name, default))
    assert (settings.rate, settings.num_threads, settings.threshold) == (10.0, 3, 1.0)
    assert isinstance(settings.rate, float) and isinstance(settings.num_threads, int)
    assert (settings.labels, settings.sort_axis, settings.image_service) == ("", "y", "/get_image")
    assert settings.protocol_names().robot_ready == "/RobotReady"
    faults = read_settings(SimCameraFaults, lambda name, default: {"~fail": "true", "~empty": 0}.get(name, default))
    assert (faults.fail, faults.empty, faults.delay) == (True, False, 0.0)
    for value, kind in (("fast", "a number"), (True, "a number")):
        with pytest.raises(ValueError, match=f"parameter ~rate: .* is not {kind}"):
            read_settings(DetectorSettings, lambda name, default, v=value: v if name == "~rate" else default)
    with pytest.raises(ValueError, match="parameter ~max_cubes: 2.5 is not an integer"):
        read_settings(DetectorSettings, lambda name, default: 2.5 if name == "~max_cubes" else default)
