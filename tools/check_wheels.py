#!/usr/bin/env python3
"""Do the robot's requirements install on every robot platform? (`make wheels`, part of `make test`)

For each target the README names (x86_64 and aarch64; Python 3.8 with glibc 2.31 = ROS Noetic on
Ubuntu 20.04, Python 3.11 with glibc 2.36 = Debian 12 / Raspberry Pi OS Bookworm), the
environment markers of requirements/runtime.txt are evaluated FOR THAT TARGET (pip would
evaluate them for the interpreter running it), then pip resolves the pinned lines to wheels
with the target's whole list of compatible platform tags (a single ``--platform
manylinux_2_31_...`` would not admit older manylinux wheels), binary wheels only, without
installing anything. A negative control must be refused: tflite-runtime 2.14.0 on aarch64 with
glibc 2.31 (its aarch64 wheel is manylinux_2_34). Prints one line per target, the wheel files
chosen, and a last line ``wheels: N passed, N failed``.

    python tools/check_wheels.py [--requirements requirements/runtime.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    name: str
    machine: str  # platform_machine: x86_64 | aarch64
    python: Tuple[int, int]
    glibc: Tuple[int, int]

    def environment(self) -> dict:
        """The marker variables pip would see on that machine."""
        version = f"{self.python[0]}.{self.python[1]}"
        return {"python_version": version, "python_full_version": f"{version}.0", "platform_machine": self.machine,
                "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                "implementation_name": "cpython", "platform_python_implementation": "CPython"}

    def platforms(self) -> List[str]:
        """Every manylinux tag a wheel for this machine may carry, newest glibc first."""
        oldest = 5 if self.machine == "x86_64" else 17  # manylinux for aarch64 starts at 2.17
        tags = [f"manylinux_{self.glibc[0]}_{minor}_{self.machine}" for minor in range(self.glibc[1], oldest - 1, -1)]
        tags.append(f"manylinux2014_{self.machine}")  # = manylinux_2_17
        if self.machine == "x86_64":
            tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]  # = 2_12, 2_5
        return tags


TARGETS = (
    Target("Ubuntu 20.04 / ROS Noetic, x86_64 (students' laptops)", "x86_64", (3, 8), (2, 31)),
    Target("Ubuntu 20.04 / ROS Noetic, arm64 (Raspberry Pi)", "aarch64", (3, 8), (2, 31)),
    Target("Debian 12, x86_64 (workstation)", "x86_64", (3, 11), (2, 36)),
    Target("Raspberry Pi OS Bookworm 64-bit (Debian 12 arm64)", "aarch64", (3, 11), (2, 36)),
)
#: Must NOT resolve: the wheel that made `pip install -r runtime.txt` fail on a Noetic Pi.
NEGATIVE = (Target("negative control", "aarch64", (3, 8), (2, 31)), "tflite-runtime==2.14.0")


def requirements_for(path: Path, target: Target) -> List[str]:
    """The requirement lines of ``path`` whose markers hold on ``target`` (markers removed)."""
    wanted = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise SystemExit(f"{path}: {line!r}: options and includes are not checked here")
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(target.environment()):
            req.marker = None
            wanted.append(str(req))
    return wanted


def resolve(target: Target, requirements: List[str]) -> Tuple[bool, str]:
    """(resolved?, the wheel files or pip's error) for ``requirements`` on ``target``, nothing installed."""
    py = f"{target.python[0]}{target.python[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed",
               "--disable-pip-version-check", "--target", str(Path(tmp) / "t"), "--only-binary=:all:",
               "--implementation", "cp", "--python-version", ".".join(map(str, target.python)),
               "--abi", f"cp{py}", "--report", str(report)]
        for platform in target.platforms():
            cmd += ["--platform", platform]
        proc = subprocess.run(cmd + requirements, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, PIP_NO_INPUT="1"))
        if proc.returncode != 0:
            errors = [ln for ln in proc.stdout.splitlines() if ln.startswith("ERROR")]
            return False, (errors[-1] if errors else proc.stdout.strip()[-300:])
        chosen = json.loads(report.read_text())["install"]
        return True, ", ".join(item["download_info"]["url"].rsplit("/", 1)[1] for item in chosen)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements" / "runtime.txt")
    args = parser.parse_args(argv)
    passed = failed = 0
    for target in TARGETS:
        ok, detail = resolve(target, requirements_for(args.requirements, target))
        print(f"wheels {'ok' if ok else 'FAILED'}: {target.name} (Python {target.python[0]}.{target.python[1]}, "
              f"glibc {target.glibc[0]}.{target.glibc[1]}): {detail}", flush=True)
        passed, failed = passed + ok, failed + (not ok)
    target, requirement = NEGATIVE
    refused, detail = resolve(target, [requirement])
    refused = not refused
    print(f"wheels {'ok' if refused else 'FAILED'}: {target.name}: {requirement} on {target.machine}, glibc "
          f"{target.glibc[0]}.{target.glibc[1]} is {'refused' if refused else 'NOT refused: ' + detail}")
    passed, failed = passed + refused, failed + (not refused)
    print(f"wheels: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
