#!/usr/bin/env python3
"""Follow the README's own-workspace block as written (`make readme-workspace`, part of `make test`).

The fenced block after "To use your own catkin workspace instead" in README.md is run by bash,
with ``set -e``, in a temporary workspace: ``<this repository>`` is this clone,
``~/catkin_ws`` a temporary folder, ``some_image.png`` a synthetic frame. The rosdep lines are
skipped (``rosdep update`` needs the network beyond the package registries; ``make setup``
installs the same packages from Debian), and the script says so. Its last line says whether the
block's final ``rosrun ... detect`` found faces.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "To use your own catkin workspace instead"


def readme_block(readme: Path) -> list:
    text = readme.read_text()
    start = text.index(MARKER)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    if block is None:
        raise SystemExit(f"{readme}: no ```bash block after {MARKER!r}")
    return block.group(1).splitlines()


def main() -> int:
    lines = readme_block(ROOT / "README.md")
    with tempfile.TemporaryDirectory(prefix="readme-ws-") as tmp:
        tmp_path = Path(tmp)
        frame = tmp_path / "some_image.png"
        subprocess.run([sys.executable, "-c", "import cv2, sys; from cube_detect.synth import render_indexed; "
                        "cv2.imwrite(sys.argv[1], render_indexed(5, 0, family='topdown')[0])", str(frame)], check=True)
        script = ["set -eo pipefail"]  # not -u: ROS's setup.bash reads unset variables
        for line in lines:
            if "rosdep" in line.split("#", 1)[0]:
                print(f"readme-workspace: skipped (needs the network): {line.split('#', 1)[0].strip()}")
                continue
            line = line.replace("<this repository>", str(ROOT)).replace("~/catkin_ws", str(tmp_path / "catkin_ws"))
            line = line.replace("some_image.png", f"{frame} --json {tmp_path / 'out.json'}")
            if line.strip().startswith("catkin_make"):
                log = tmp_path / "catkin_make.log"
                line += f" > {log} 2>&1 || {{ tail -30 {log}; exit 1; }}"
            script.append(line)
        # A shell as a newcomer has it: no venv active, no workspace sourced (pyenv's python3 may
        # come first on PATH: the block must not depend on which python3 that is).
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ROS_", "CMAKE_PREFIX_PATH", "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
                                    "PKG_CONFIG_PATH", "ROSLISP", "CATKIN"))}
        env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p and "/ws-" not in p)
        print("readme-workspace: running the README's block in", tmp_path / "catkin_ws", flush=True)
        proc = subprocess.run(["bash", "-c", "\n".join(script)], env=env, cwd=tmp)
        if proc.returncode != 0:
            print(f"readme-workspace: FAILED: the README's own-workspace block exited {proc.returncode}")
            return 1
        result = json.loads((tmp_path / "out.json").read_text())
        labels = [d["label"] for d in result[0]["detections"]]
        ok = bool(labels)
        print(f"readme-workspace: {'ok' if ok else 'FAILED'}: the block built the workspace and `rosrun cube_detect "
              f"cli detect` found {labels}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
