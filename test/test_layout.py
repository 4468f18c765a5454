"""The package's shape: a rospy-free library, the nodes in cube_detect.ros, thin launchers in scripts/."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "src" / "cube_detect"
NODES = ["detector_node", "capture_node", "sim_camera", "sim_controller"]


def imported_modules(path: Path):
    """Every module ``path`` imports, function-local imports included (absolute names)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_the_library_never_imports_the_ros_shell():
    library = [path for path in sorted(LIBRARY.rglob("*.py")) if path.relative_to(LIBRARY).parts[0] != "ros"]
    assert LIBRARY / "synth" / "families.py" in library  # subpackages (synth/) are checked too
    offenders = [f"{path.relative_to(LIBRARY)}: {name}" for path in library for name in imported_modules(path)
                 if name == "cube_detect.ros" or name.startswith("cube_detect.ros.") or name.startswith("rospy")]
    assert offenders == []


def test_scripts_are_launchers():
    for script in sorted((ROOT / "scripts").iterdir()):
        lines = script.read_text().splitlines()
        assert len(lines) <= 40, f"scripts/{script.name}: {len(lines)} lines"
        assert lines[0] == "#!/usr/bin/env python3"
    for node in NODES:  # through the launcher: a missing module is one line (test_launchers.py)
        assert f'run("cube_detect.ros.{node}", "{node}")' in (ROOT / "scripts" / node).read_text()


def test_settings_tables_load_without_rospy():
    code = ("import sys, cube_detect.ros.settings; "
            "bad = [m for m in ('rospy', 'tensorflow') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("node", NODES)
def test_nodes_are_importable_modules_with_a_main(node):
    pytest.importorskip("cube_detect.msg", reason="generated messages: source tools/env.sh (make setup)")
    module = __import__(f"cube_detect.ros.{node}", fromlist=["main"])
    assert callable(module.main)
