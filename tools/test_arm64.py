#!/usr/bin/env python3
"""Does the robot side run on arm64? (`make test-arm64`; CI runs it after `make test`)

No board needed: for each Debian suite below, an arm64 root is built from Debian's packages
(``mmdebstrap --variant=extract``: unpacked, no maintainer script run) and its own arm64 Python
runs under qemu-user (``qemu-aarch64-static -L ROOT``). Steps, one log line each:

1. the root, once: cached in ``~/.cache/cube_detect/arm64/SUITE-KEY`` (KEY: a hash of the
   mmdebstrap arguments), built in a temporary folder renamed when complete, so an interrupted
   build is never taken for a cached one;
2. a Raspberry Pi 4 (Cortex-A72, 4 cores) ``ROOT/proc/cpuinfo``: qemu's ``-L`` reads it before the
   host's x86 one, on which the TFLite kernels' CPU detection crashes ``invoke``; qemu emulates
   the same core (``-cpu cortex-a72``: with qemu's default ``max`` core, XNNPACK's int8 kernels
   return garbage under emulation). ``ROOT/usr/bin/python3-qemu``, a host shell script, runs the
   root's Python so; it is also that Python's ``sys.executable`` (qemu's ``-0``), so that the code
   under test can start Python subprocesses (worker pools): without binfmt_misc, which a
   container lacks, an arm64 binary cannot be exec'd directly;
3. the robot requirements (``requirements/robot-py38-test.txt``: runtime.txt, pip's OpenCV,
   pytest) installed by the root's own pip into ``ROOT/opt/site-KEY`` (KEY: a hash of the
   requirement files: reinstalled only when they change), markers evaluated by the arm64
   interpreter: LiteRT on Debian 12 (Python 3.11), tflite-runtime 2.13.0 on Debian 11 (Python 3.9,
   glibc 2.31 like Ubuntu 20.04);
4. ``python -m cube_detect detect`` on frames rendered here by the synthetic generator, on x86 and
   in each root (the package's ``src/`` on PYTHONPATH: no TensorFlow, handwriting data or fonts
   there), x86 running the same kernels: LiteRT's XNNPACK (bit-identical on both machines) for
   Debian 12, the builtin kernels (``CUBE_DETECT_XNNPACK=0``) for tflite-runtime 2.13, whose
   output differs from XNNPACK by up to 10 quantization steps. Per frame: the same labels in the
   same order, each box side within a pixel or within one quantization step of the model's box
   output, whichever is larger (for the shipped model that step is 1.6 px on a 752x480 frame: OpenCV's resize on arm64
   rounds a few of the model's input pixels differently, which moves a box by one step now and
   then, so "within a pixel" alone would only hold on hand-picked frames);
5. the robot-side unit tests that need no roscore (the selection of tools/py38.sh) in each root
   (the worker pools' tests, 80 s under emulation, in the Debian 12 one only).

The last line says whether the labels match; the exit code is 1 on any mismatch or failure.
Times under emulation say nothing about a Raspberry Pi's speed.

    python tools/test_arm64.py [--suites bookworm,bullseye] [--no-tests] [--keep]

The cache can be removed at any time (``rm -rf ~/.cache/cube_detect/arm64``): the next run
rebuilds it (about 5 minutes more, network needed: Debian's mirror and PyPI).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CUBE_DETECT_ARM64_CACHE", Path.home() / ".cache" / "cube_detect" / "arm64"))
MIRROR = "http://deb.debian.org/debian"
#: What the extract variant unpacks (with their dependencies): Python and pip run as unpacked;
#: the wheels' C++ code (TFLite, OpenCV) needs libstdc++, which no other package pulls in.
PACKAGES = ("python3", "python3-pip", "libstdc++6")
#: The root's Python packages: runtime.txt + pip's OpenCV + pytest (the Python 3.8 check's set).
REQUIREMENTS = ROOT / "requirements" / "robot-py38-test.txt"
MODEL = ROOT / "models" / "cube_detect.tflite"
#: Run in the Debian 12 root only: worker pools rendering scenes, 80 s under emulation.
SLOW_TESTS = ("test/test_workers.py",)
#: A box side matches within this many pixels, or within one step of the model's quantized box
#: output mapped to the frame's pixels when that is larger (see box_steps_px).
BOX_TOLERANCE_PX = 1.0
#: The frames: (seed, index, family), rendered on x86; each holds cubes the model finds.
FRAMES: Tuple[Tuple[int, int, Optional[str]], ...] = (
    (7, 0, "topdown"), (7, 1, "topdown"), (7, 2, "table"), (7, 3, "bright"),
    (7, 4, "closeup"), (7, 5, "rotated"), (7, 6, None), (7, 7, None),
)
#: A Raspberry Pi 4 Model B's /proc/cpuinfo (4 Cortex-A72 cores, 64-bit kernel).
CPUINFO = "".join(
    f"processor\t: {cpu}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n"
    for cpu in range(4)
) + "Revision\t: c03111\nSerial\t\t: 10000000c0ffee00\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"


@dataclass(frozen=True)
class Suite:
    name: str  # Debian suite
    debian: str
    package: str  # the TFLite interpreter runtime.txt's markers must pick there
    xnnpack: bool  # the kernels that runtime runs on arm64 (x86 runs the same)


SUITES: Dict[str, Suite] = {
    "bookworm": Suite("bookworm", "Debian 12", "ai-edge-litert", True),
    "bullseye": Suite("bullseye", "Debian 11", "tflite-runtime", False),
}
T0 = time.monotonic()


class Failure(Exception):
    """A step failed: its one-line reason."""


def log(message: str) -> None:
    print(f"test-arm64: [{time.monotonic() - T0:5.0f} s] {message}", flush=True)


def run(cmd: Sequence[str], what: str, env: Optional[dict] = None, cwd: Path = ROOT,
        timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run ``cmd``; on failure show its output's tail and raise Failure(``what``)."""
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise Failure(f"{what}: no answer after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        noise = ("WARNING: Location '", "WARNING: Url '", "WARNING: Running pip as the 'root' user")
        lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith(noise)]
        print("\n".join(lines[-30:]), file=sys.stderr, flush=True)
        raise Failure(f"{what}: exit code {proc.returncode} (output above)")
    return proc


def short_hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:12]


# ----------------------------------------------------------------------------- the roots
def build_root(suite: Suite) -> Path:
    """The cached arm64 root of ``suite``, built first when missing (atomically)."""
    key = short_hash(json.dumps(["extract", "arm64", suite.name, MIRROR, PACKAGES]).encode())
    root = CACHE / f"{suite.name}-{key}"
    for stale in CACHE.glob(f".{suite.name}-*.tmp"):  # an interrupted build (we hold the lock)
        shutil.rmtree(stale)
    if (root / "usr" / "bin" / "python3").exists():
        log(f"{suite.name}: arm64 root cached ({root})")
        return root
    tmp = CACHE / f".{suite.name}-{key}.tmp"
    log(f"{suite.name}: building the arm64 root from Debian's packages ({', '.join(PACKAGES)}) ...")
    run(["mmdebstrap", "--quiet", "--variant=extract", "--architectures=arm64", "--skip=check/qemu",
         f"--include={','.join(PACKAGES)}", suite.name, str(tmp), MIRROR], f"{suite.name}: mmdebstrap")
    os.rename(tmp, root)
    for old in CACHE.glob(f"{suite.name}-*"):  # roots of older package lists
        if old != root:
            shutil.rmtree(old)
    log(f"{suite.name}: arm64 root built ({root})")
    return root


def prepare_root(root: Path) -> None:
    """A Raspberry Pi 4's cpuinfo where qemu's -L looks first, and ROOT/usr/bin/python3-qemu
    (both rewritten when they differ: cheap, and the script names the root's own path)."""
    wrapper = (f'#!/bin/sh\n# {Path(__file__).name}: the arm64 root\'s Python under qemu-user, also as its own '
               f'sys.executable (-0)\nexec qemu-aarch64-static -cpu cortex-a72 -L "{root}" -0 "$0" '
               f'"{root}/usr/bin/python3" "$@"\n')
    for path, text in ((root / "proc" / "cpuinfo", CPUINFO), (root / "usr" / "bin" / "python3-qemu", wrapper)):
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    (root / "usr" / "bin" / "python3-qemu").chmod(0o755)


def arm_env(root: Path, pythonpath: Sequence[Path] = (), **extra: str) -> dict:
    """The environment of a process under qemu: nothing of this machine's Python setup."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8",
           "PYTHONPYCACHEPREFIX": str(root / "var" / "cache" / "cube_detect-pycache"),
           "PIP_ROOT_USER_ACTION": "ignore", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") and k not in env})
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    env.update(extra)
    return env


def arm_python(root: Path) -> List[str]:
    return [str(root / "usr" / "bin" / "python3-qemu")]


def install_requirements(suite: Suite, root: Path) -> Path:
    """ROOT/opt/site-KEY with the robot requirements, installed by the root's own pip."""
    included = re.findall(r"^-r\s+(\S+)", REQUIREMENTS.read_text(), re.M)
    files = [REQUIREMENTS] + [REQUIREMENTS.parent / name for name in included]
    site = root / "opt" / f"site-{short_hash(*(f.read_bytes() for f in files))}"
    for stale in site.parent.glob(".site-*.tmp"):  # an interrupted install (we hold the lock)
        shutil.rmtree(stale)
    if site.is_dir():
        log(f"{suite.name}: requirements cached ({site.name})")
    else:
        tmp = site.with_name(f".{site.name}.tmp")
        log(f"{suite.name}: installing {REQUIREMENTS.relative_to(ROOT)} with the root's arm64 pip (minutes) ...")
        run(arm_python(root) + ["-m", "pip", "install", "--quiet", "--no-warn-script-location",
                                "--only-binary=:all:", "--target", str(tmp), "-r", str(REQUIREMENTS)],
            f"{suite.name}: pip install", env=arm_env(root, TMPDIR=str(root / "tmp")))
        os.rename(tmp, site)
        for old in site.parent.glob("site-*"):
            if old != site:
                shutil.rmtree(old)
    return site


def installed(site: Path, package: str) -> Optional[str]:
    """The version of ``package`` installed in ``site``, None when absent."""
    from importlib.metadata import distributions

    for dist in distributions(path=[str(site)]):
        if dist.metadata["Name"].lower().replace("_", "-") == package:
            return dist.version
    return None


# ----------------------------------------------------------------------------- frames and comparison
def render_frames(folder: Path) -> Dict[str, Tuple[int, int]]:
    """FRAMES as PNGs in ``folder`` (x86, this package's generator): file name -> (height, width)."""
    import cv2

    from cube_detect.synth import render_indexed

    folder.mkdir(parents=True)
    sizes = {}
    for seed, index, family in FRAMES:
        image, boxes = render_indexed(seed, index, family=family)
        if not boxes:
            raise Failure(f"frame {seed}/{index}/{family}: no cube in it")
        name = f"frame-{seed}-{index}-{family or 'mixture'}.png"
        cv2.imwrite(str(folder / name), image)
        sizes[name] = (image.shape[0], image.shape[1])
    return sizes


def box_steps_px(model: Path, sizes: Dict[str, Tuple[int, int]]) -> Dict[str, float]:
    """File name -> one quantization step of ``model``'s box output in that frame's pixels: the
    output's scale (in grid cells) x the stride / the letterbox's model pixels per frame pixel."""
    from cube_detect.inference import make_interpreter
    from cube_detect.modelspec import ModelSpec, sidecar_path

    spec = ModelSpec.load(sidecar_path(model))
    interpreter = make_interpreter(model)
    box_scale = next(float(o["quantization"][0]) for o in interpreter.get_output_details() if int(o["shape"][-1]) == 4)
    return {name: box_scale * spec.stride / min(spec.width / w, spec.height / h) for name, (h, w) in sizes.items()}


def compare(reference: List[dict], robot: List[dict], steps_px: Optional[Dict[str, float]] = None,
            tolerance: float = BOX_TOLERANCE_PX) -> Tuple[List[str], float]:
    """``detect --json`` results of x86 (``reference``) and of the robot: (problems, max box diff px).

    Per image (matched by file name): the same labels in the same order, each box side within
    ``tolerance`` pixels or within that image's box quantization step (``steps_px``, file name ->
    pixels), whichever is larger. An image x86 finds nothing in is a problem too: it would prove
    nothing.
    """
    problems: List[str] = []
    worst = 0.0
    robot_by_name = {Path(r["image"]).name: r for r in robot}
    for ref in reference:
        name = Path(ref["image"]).name
        got = robot_by_name.pop(name, None)
        if got is None:
            problems.append(f"{name}: no result on the robot")
            continue
        if ref.get("error") or got.get("error"):
            problems.append(f"{name}: error: x86 {ref.get('error')!r}, robot {got.get('error')!r}")
            continue
        want_labels = [d["label"] for d in ref["detections"]]
        got_labels = [d["label"] for d in got["detections"]]
        if not want_labels:
            problems.append(f"{name}: x86 finds no cube: nothing to compare")
        if want_labels != got_labels:
            problems.append(f"{name}: labels {got_labels} on the robot, {want_labels} on x86")
            continue
        allowed = max(tolerance, (steps_px or {}).get(name, 0.0) + 0.1)  # + the JSON's 0.1 px rounding
        for want, have in zip(ref["detections"], got["detections"]):
            diff = max(abs(float(a) - float(b)) for a, b in zip(want["box"], have["box"]))
            worst = max(worst, diff)
            if diff > allowed:
                problems.append(f"{name}: {want['label']} box {have['box']} on the robot, {want['box']} on x86 "
                                f"({diff:.1f} px > {allowed:.1f})")
    problems += [f"{name}: not in the x86 results" for name in robot_by_name]
    return problems, worst


def detect_x86(frames: Path, out: Path, xnnpack: bool) -> List[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    env.pop("CUBE_DETECT_XNNPACK", None)
    if not xnnpack:
        env["CUBE_DETECT_XNNPACK"] = "0"
    run([sys.executable, "-m", "cube_detect", "detect", "--backend", "cpu", "--model", str(MODEL), str(frames),
         "--json", str(out)], f"x86 detect ({'XNNPACK' if xnnpack else 'builtin kernels'})", env=env)
    return json.loads(out.read_text())


def x86_runtime() -> str:
    from cube_detect.inference import runtime_name

    return runtime_name()


def robot_tests() -> List[str]:
    """The robot-side unit tests (no TensorFlow, no roscore): tools/py38.sh's selection."""
    text = (ROOT / "tools" / "py38.sh").read_text()
    call = re.search(r"-m pytest (.*?)\n(?!\s)", text, re.S)
    tests = re.findall(r"test/test_\w+\.py", call.group(1) if call else "")
    if not tests:
        raise Failure("tools/py38.sh: no `-m pytest test/...` line to take the robot-side tests from")
    return tests


# ----------------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default="bookworm,bullseye", help="comma-separated, of " + ", ".join(SUITES))
    parser.add_argument("--no-tests", action="store_true", help="skip the robot-side unit tests in every root")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (frames, JSON results)")
    args = parser.parse_args(argv)
    suites = [SUITES[name] for name in args.suites.split(",") if name]
    missing = [tool for tool in ("mmdebstrap", "qemu-aarch64-static") if shutil.which(tool) is None]
    if missing:
        print(f"test-arm64: FAILED: {' and '.join(missing)} not installed (`make setup` installs them)")
        return 1
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cube_detect-arm64-"))
    summary: List[str] = []
    frames_n, worst_all, tests_line = len(FRAMES), 0.0, ""
    try:
        # One run at a time per cache (CI and a developer's run may share it).
        with open(CACHE / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            prepared = {}
            for suite in suites:
                root = build_root(suite)
                prepare_root(root)
                site = install_requirements(suite, root)
                version = installed(site, suite.package)
                if version is None:
                    raise Failure(f"{suite.name}: runtime.txt's markers did not install {suite.package} "
                                  f"(in {site})")
                prepared[suite.name] = (root, site, version)
            sizes = render_frames(work / "frames")
            steps = box_steps_px(MODEL, sizes)
            here = x86_runtime()
            log(f"rendered {frames_n} frames on x86 (one box quantization step: {min(steps.values()):.1f}-"
                f"{max(steps.values()):.1f} px); x86 runs {here}")
            references = {}
            for suite in suites:
                root, site, version = prepared[suite.name]
                kernels = "XNNPACK" if suite.xnnpack else "builtin kernels"
                if suite.xnnpack and here != f"{suite.package.replace('-', '_')} {version}":
                    raise Failure(f"{suite.name} runs {suite.package} {version}, x86 {here}: not the same runtime "
                                  "(install requirements/runtime.txt here: make setup)")
                if suite.xnnpack not in references:
                    references[suite.xnnpack] = detect_x86(work / "frames", work / f"x86-{kernels[:7]}.json",
                                                           suite.xnnpack)
                out = work / f"{suite.name}.json"
                run(arm_python(root) + ["-m", "cube_detect", "detect", "--backend", "cpu", "--model", str(MODEL),
                                        str(work / "frames"), "--json", str(out)],
                    f"{suite.name}: detect under qemu", env=arm_env(root, [site, ROOT / "src"], TMPDIR=str(work)))
                problems, worst = compare(references[suite.xnnpack], json.loads(out.read_text()), steps)
                for problem in problems:
                    log(f"{suite.name}: MISMATCH {problem}")
                if problems:
                    raise Failure(f"labels differ on {suite.name} ({suite.package} {version}, {kernels}) "
                                  f"from x86 on {len(problems)} of {frames_n} frames (lines above)")
                worst_all = max(worst_all, worst)
                log(f"{suite.name} ({suite.debian}, {suite.package} {version}, {kernels}): "
                    f"labels match x86 on {frames_n} frames, max box diff {worst:.1f} px")
                summary.append(f"{suite.name} ({suite.package} {version})")
            for suite in [] if args.no_tests else suites:
                root, site, _ = prepared[suite.name]
                tests = [t for t in robot_tests() if suite.name == "bookworm" or t not in SLOW_TESTS]
                log(f"{suite.name}: {len(tests)} robot-side test files under qemu ...")
                proc = run(arm_python(root) + ["-m", "pytest", "-q", "-p", "no:cacheprovider",
                                               "--basetemp", str(work / f"pytest-{suite.name}")] + tests,
                           f"{suite.name}: robot-side unit tests under qemu",
                           env=arm_env(root, [site, ROOT / "src"], TMPDIR=str(work)))
                counts = proc.stdout.strip().splitlines()[-1].strip("= ")
                log(f"{suite.name}: robot-side tests: {counts}")
                tests_line += f"{'; ' if tests_line else ''}{suite.name} {counts.split(' in ')[0]}"
    except Failure as exc:
        print(f"test-arm64: FAILED: {exc} (work folder: {work})", flush=True)
        return 1
    except Exception as exc:  # a bug or an unexpected state: the traceback, then the verdict line
        import traceback

        traceback.print_exc()
        print(f"test-arm64: FAILED: {type(exc).__name__}: {exc} (work folder: {work})", flush=True)
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    tests_note = f"; unit tests: {tests_line}" if tests_line else ""
    print(f"test-arm64: labels match on {' and '.join(summary)}: {frames_n} frames, "
          f"max box diff {worst_all:.1f} px{tests_note} ({time.monotonic() - T0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
