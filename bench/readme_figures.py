#!/usr/bin/env python3
"""The README's measured figures, from the commands that measure them (run by hand, like
`make bench`; never by `make test`).

python -m bench.readme_figures tests   # `make test`'s stages, timed on a clean clone of HEAD
                                       # (CI=true, as CI runs them) -> bench/test_figures.json
python -m bench.readme_figures model   # the shipped model's per-family table and its goals
                                       # (`robustness`) -> bench/model_figures.json
python -m bench.readme_figures readme  # only rewrite the README's blocks from the two JSON files

Each writes its JSON, then rewrites the README between ``<!-- tests:start -->`` /
``<!-- tests:end -->`` and ``<!-- families:start -->`` / ``<!-- families:end -->``.
``tests`` exits with the first failing stage's code (the figures of a failed run are not kept).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench.report import machine_info

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEST_FIGURES = ROOT / "bench" / "test_figures.json"
MODEL_FIGURES = ROOT / "bench" / "model_figures.json"

#: `make test`'s prerequisites in order (test/test_readme_figures.py keeps this list and the
#: Makefile in agreement), then what CI runs after it (.ci/run).
TEST_STAGES = ["setup", "lint", "py38", "wheels", "unit", "rostest", "readme-workspace"]
CI_STAGES = ["test-arm64"]

#: The issue's goals for every family at the model's default threshold.
GOALS = {"mAP50": 0.97, "exact_sequences": 0.95, "true_score_p10": 0.5}
#: The held-out family again on this many scenes: one scene of 100 is a point, and the first
#: 300 took part in choosing between training stages, so they flatter the model chosen on them.
HELDOUT_SCENES = 1500


# ----------------------------------------------------------------------------- parsing
def _last(pattern: str, text: str) -> Optional[re.Match]:
    found = list(re.finditer(pattern, text, re.MULTILINE))
    return found[-1] if found else None


def parse_stage(stage: str, output: str) -> Dict[str, object]:
    """The counts a stage's own summary line gives (nothing when it prints none)."""
    figures: Dict[str, object] = {}
    if stage in ("unit", "py38"):
        summary = _last(r"^=*\s*(.*\d+ passed.*?) in [\d.]+s", output)
        if summary:
            for count, what in re.findall(r"(\d+) (passed|skipped|failed|errors?|deselected)", summary.group(1)):
                figures[what] = int(count)
        if stage == "py38" and re.search(r"^py38: SKIPPED", output, re.MULTILINE):
            figures["skipped_stage"] = True
    elif stage == "rostest":
        files = re.findall(r"^rostest \S+\.test: (ok|FAILED)", output, re.MULTILINE)
        total = _last(r"^rostest: (\d+) passed, (\d+) failed", output)
        figures["files"] = len(files)
        if total:
            figures["passed"], figures["failed"] = int(total.group(1)), int(total.group(2))
    elif stage == "wheels":
        total = _last(r"^wheels: (\d+) passed, (\d+) failed", output)
        if total:
            figures["passed"], figures["failed"] = int(total.group(1)), int(total.group(2))
    elif stage == "test-arm64":
        line = _last(r"^test-arm64: .*$", output)
        if line:
            figures["verdict"] = line.group(0)
    return figures


# ----------------------------------------------------------------------------- tests
def run_stages(stages: List[str], cwd: Path, env: Dict[str, str]) -> List[dict]:
    results = []
    for stage in stages:
        print(f"readme-figures: make {stage} ...", flush=True)
        started = time.monotonic()
        # Ctrl-C as in a terminal: started in a shell's background, this process and its children
        # would inherit SIGINT ignored, and the tests that stop a node with Ctrl-C would not see it.
        proc = subprocess.run(["make", "--no-print-directory", stage], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        seconds = time.monotonic() - started
        result = {"stage": stage, "seconds": round(seconds, 1), "exit": proc.returncode,
                  **parse_stage(stage, proc.stdout)}
        results.append(result)
        print(f"readme-figures: make {stage}: exit {proc.returncode} in {seconds / 60:.1f} min "
              f"{ {k: v for k, v in result.items() if k not in ('stage', 'seconds', 'exit')} }", flush=True)
        if proc.returncode:
            print(proc.stdout[-15000:])
            break
    return results


def measure_tests(in_place: bool) -> int:
    env = dict(os.environ, CI="true")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="cube_detect-figures-") as tmp:
        if in_place:
            where = ROOT
        else:
            where = Path(tmp) / "cube_detect"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
        results = run_stages(TEST_STAGES + CI_STAGES, where, env)
    failed = next((r for r in results if r["exit"]), None)
    if failed:
        print(f"readme-figures: make {failed['stage']} failed (exit {failed['exit']}): figures not written")
        return int(failed["exit"]) or 1
    figures = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "commit": head, "clean_clone": not in_place, "machine": machine(), "stages": results,
               "total_minutes": round(sum(r["seconds"] for r in results) / 60, 1)}
    TEST_FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"readme-figures: wrote {TEST_FIGURES.relative_to(ROOT)}")
    return 0


def machine() -> str:
    m = machine_info()
    return f"{m['cpu']}, {m['cores']} cores, {m['os']}"


def tests_block(figures: dict) -> str:
    stage = {r["stage"]: r for r in figures["stages"]}

    def minutes(name: str) -> str:
        return f"{stage[name]['seconds'] / 60:.1f} min" if name in stage else "not run"

    py38 = stage.get("py38", {})
    py38_text = ("skipped (no Python 3.8 here)" if py38.get("skipped_stage") else
                 f"{py38.get('passed', 0)} passed, {py38.get('skipped', 0)} skipped")
    unit, ros, wheels = stage.get("unit", {}), stage.get("rostest", {}), stage.get("wheels", {})
    arm = stage.get("test-arm64", {})
    rows = [
        ("`make setup` (venv, requirements, catkin workspace)", "—", minutes("setup")),
        ("`make lint`", "clean", minutes("lint")),
        ("`make py38` (robot side on Python 3.8)", py38_text, minutes("py38")),
        ("`make wheels`", f"{wheels.get('passed', 0)} targets and controls resolved as expected", minutes("wheels")),
        ("`pytest test/`", f"{unit.get('passed', 0)} passed, {unit.get('skipped', 0)} skipped", minutes("unit")),
        ("rostest `test/*.test`", f"{ros.get('passed', 0)} tests in {ros.get('files', 0)} files", minutes("rostest")),
        ("`make readme-workspace`", "ok", minutes("readme-workspace")),
        ("`make test-arm64` (CI, after `make test`)", str(arm.get("verdict", "—")).replace("test-arm64: ", ""),
         minutes("test-arm64")),
    ]
    where = "a clean clone" if figures.get("clean_clone") else "the working tree"
    lines = [f"<!-- generated by `python -m bench.readme_figures tests` ({figures['date']}, commit "
             f"{figures['commit']}, {where}, CI=true; {figures['machine']}) -->",
             "", "| stage | result | time |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", f"In all {figures['total_minutes']:.0f} minutes on this 2-core machine "
              f"(`python -m bench.readme_figures tests` measures it: `make test`'s stages and `make test-arm64` "
              f"on {where} of HEAD, as CI runs them)."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- model
def _robustness(args: List[str], tmp: str) -> Optional[dict]:
    table = Path(tmp) / "table.json"
    proc = subprocess.run([sys.executable, "-m", "cube_detect", "robustness", *args, "--json", str(table)], cwd=ROOT)
    if proc.returncode:
        print(f"readme-figures: robustness {' '.join(args)} failed (exit {proc.returncode}): figures not written")
        return None
    return json.loads(table.read_text())


def measure_model(count: int, baseline: Optional[str] = None) -> int:
    """The table's figures; ``baseline``: compare with the figures bench/model_figures.json holds
    now (the model before), under that name, instead of the comparison column kept there."""
    heldout_args = ["--count", str(HELDOUT_SCENES), "--families", "handwriting"]
    with tempfile.TemporaryDirectory() as tmp:
        data = _robustness(["--count", str(count)], tmp)
        heldout = _robustness(heldout_args, tmp) if data is not None else None
    if data is None or heldout is None:
        return 1
    old = json.loads(MODEL_FIGURES.read_text()) if MODEL_FIGURES.exists() else {}
    figures = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "command": f"python -m cube_detect robustness --count {count}", "robustness": data,
               "heldout_command": f"python -m cube_detect robustness {' '.join(heldout_args)}", "heldout": heldout,
               # the comparison column: the model before (``baseline``), or as kept: the last round's
               # model, measured by the same command then
               "last_round": old.get("last_round", {})}
    if baseline:
        figures["baseline"] = {"name": baseline, "date": old.get("date"),
                               "families": _families(old.get("robustness", {})),
                               "heldout": _families(old.get("heldout", {}))}
    elif "baseline" in old:
        figures["baseline"] = old["baseline"]
    MODEL_FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"readme-figures: wrote {MODEL_FIGURES.relative_to(ROOT)}")
    return 0


def meets(row: dict) -> bool:
    return all(row.get(key) is not None and row[key] >= goal for key, goal in GOALS.items())


def _families(data: dict) -> dict:
    return {name: row for name, row in data.get("families", data).items() if isinstance(row, dict) and "mAP50" in row}


def families_block(figures: dict) -> str:
    data = figures["robustness"]
    threshold = data.get("threshold")
    commands = f"`{figures['command']}`" + (f", `{figures['heldout_command']}`" if "heldout" in figures else "")
    baseline = figures.get("baseline")
    before = baseline["name"] if baseline else "last round"
    lines = [f"<!-- generated by `python -m bench.readme_figures model` ({figures['date']}: {commands}) -->", "",
             "| family | mAP@0.5 | exact sequences | true-face score p10 / median | goals | "
             f"{before}: mAP@0.5, exact sequences, p10 / median |",
             "| --- | --- | --- | --- | --- | --- |"]
    # (name, figures, the model before's, decimals of the exact-sequence %: one for the larger run)
    earlier = baseline["families"] if baseline else figures.get("last_round", {})
    rows = [(name, row, earlier.get(name), 0) for name, row in _families(data).items()]
    larger = _families(figures.get("heldout", {}))
    rows += [(f"{name}, {row['images']} scenes", row, (baseline or {}).get("heldout", {}).get(name), 1)
             for name, row in larger.items()]
    for name, row, last, decimals in rows:
        last_text = (f"{last['mAP50']:.3f}, {100 * last['exact_sequences']:.{decimals}f} %, "
                     f"{last['true_score_p10']:.2f} / {last['true_score_median']:.2f}" if last else "—")
        cells = [f"{row['mAP50']:.3f}", f"{100 * row['exact_sequences']:.{decimals}f} %",
                 f"{row['true_score_p10']:.2f} / {row['true_score_median']:.2f}"]
        if name.startswith("handwriting"):  # the held-out family, our proxy for another person's hand: in bold
            name = "**" + name.replace("handwriting", "handwriting (held out)", 1) + "**"
            cells = [f"**{c}**" for c in cells]
        lines.append(f"| {name} | {' | '.join(cells)} | {'met' if meets(row) else '**not met**'} | {last_text} |")
    goal_text = (f"Goals per family: mAP@0.5 ≥ {GOALS['mAP50']}, exact sequences ≥ "
                 f"{100 * GOALS['exact_sequences']:.0f} %, true-face score p10 ≥ {GOALS['true_score_p10']}")
    lines += ["", goal_text + (f", at the model's default threshold {threshold:.2f}." if threshold else ".")]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- README
def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"readme-figures: README.md has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def rewrite_readme() -> None:
    text = README.read_text()
    if TEST_FIGURES.exists():
        text = replace_block(text, "tests", tests_block(json.loads(TEST_FIGURES.read_text())))
    if MODEL_FIGURES.exists():
        text = replace_block(text, "families", families_block(json.loads(MODEL_FIGURES.read_text())))
    README.write_text(text)
    print("readme-figures: README.md rewritten from bench/test_figures.json and bench/model_figures.json")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["tests", "model", "readme"])
    parser.add_argument("--in-place", action="store_true",
                        help="tests: run in this working tree instead of a clean clone of HEAD")
    parser.add_argument("--count", type=int, default=100, help="model: scenes per family (default 100)")
    parser.add_argument("--baseline", metavar="NAME",
                        help="model: compare with the figures bench/model_figures.json holds now, named NAME "
                             "(e.g. the model before), instead of the comparison column kept there")
    args = parser.parse_args(argv)
    if args.what == "tests":
        code = measure_tests(args.in_place)
    elif args.what == "model":
        code = measure_model(args.count, args.baseline)
    else:
        code = 0
    if code == 0:
        rewrite_readme()
    return code


if __name__ == "__main__":
    sys.exit(main())
