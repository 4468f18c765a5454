"""bench/readme_figures.py: the README's measured figures come from the commands that measure
them. These tests check its parsing and blocks on real outputs' shapes, and that its stage list
is `make test`'s."""

import re
from pathlib import Path

import pytest

from bench import readme_figures as rf

ROOT = Path(__file__).resolve().parent.parent


def test_stages_are_make_tests_prerequisites():
    makefile = (ROOT / "Makefile").read_text()
    prerequisites = re.search(r"^test: (.*)$", makefile, re.MULTILINE).group(1).split()
    assert prerequisites == rf.TEST_STAGES
    ci = (ROOT / ".ci" / "run").read_text()
    for stage in rf.CI_STAGES:
        assert f"make {stage}" in ci


def test_parse_stage_reads_each_summary():
    assert rf.parse_stage("unit", "....\n= 425 passed, 7 skipped, 2 deselected in 702.31s (0:11:42) =\n") == {
        "passed": 425, "skipped": 7, "deselected": 2}
    assert rf.parse_stage("py38", "py38: SKIPPED the Python 3.8 (ROS Noetic) checks: no Python 3.8 here\n") == {
        "skipped_stage": True}
    out = ("rostest a.test: ok (4 tests, 0 failed, 30 s)\nrostest b.test: FAILED (1 tests, 1 failed, 9 s)\n"
           "rostest: 4 passed, 1 failed\n")
    assert rf.parse_stage("rostest", out) == {"files": 2, "passed": 4, "failed": 1}
    assert rf.parse_stage("wheels", "wheels ok: x\nwheels: 5 passed, 0 failed\n") == {"passed": 5, "failed": 0}
    assert rf.parse_stage("test-arm64", "x\ntest-arm64: labels match on bookworm\n") == {
        "verdict": "test-arm64: labels match on bookworm"}


def _row(m, e, p10, med):
    return {"mAP50": m, "exact_sequences": e, "true_score_p10": p10, "true_score_median": med}


def test_families_block_marks_goals_and_last_round():
    figures = {"date": "d", "command": "python -m cube_detect robustness --count 100",
               "robustness": {"threshold": 0.4, "families": {"topdown": _row(0.99, 0.96, 0.7, 0.86),
                                                             "handwriting": _row(0.947, 0.83, 0.52, 0.83)}},
               "last_round": {"handwriting": _row(0.895, 0.63, 0.15, 0.75)}}
    block = rf.families_block(figures)
    assert "| topdown | 0.990 | 96 % | 0.70 / 0.86 | met | — |" in block
    assert ("| **handwriting (held out)** | **0.947** | **83 %** | **0.52 / 0.83** | **not met** "
            "| 0.895, 63 %, 0.15 / 0.75 |") in block
    assert "threshold 0.40" in block
    assert "scenes" not in block  # figures of before the larger held-out run: the table as it was


def test_families_block_adds_the_larger_held_out_run():
    figures = {"date": "d", "command": "python -m cube_detect robustness --count 100",
               "robustness": {"threshold": 0.35, "families": {"handwriting": _row(0.98, 0.95, 0.69, 0.86)}},
               "heldout_command": "python -m cube_detect robustness --count 1500 --families handwriting",
               "heldout": {"threshold": 0.35, "families": {"handwriting": {**_row(0.973, 0.923, 0.67, 0.87),
                                                                          "images": 1500}}}}
    block = rf.families_block(figures)
    assert "`python -m cube_detect robustness --count 1500 --families handwriting`" in block
    assert "| **handwriting (held out)** | **0.980** | **95 %** | **0.69 / 0.86** | met | — |" in block
    assert ("| **handwriting (held out), 1500 scenes** | **0.973** | **92.3 %** | **0.67 / 0.87** | **not met** | — |"
            in block)


def test_families_block_compares_with_a_named_baseline_row_by_row():
    figures = {"date": "d", "command": "python -m cube_detect robustness --count 100",
               "robustness": {"threshold": 0.5, "families": {"handwriting": _row(0.98, 0.96, 0.8, 0.9)}},
               "heldout_command": "python -m cube_detect robustness --count 1500 --families handwriting",
               "heldout": {"threshold": 0.5, "families": {"handwriting": {**_row(0.984, 0.951, 0.81, 0.9),
                                                                         "images": 1500}}},
               "last_round": {"handwriting": _row(0.895, 0.63, 0.15, 0.75)},
               "baseline": {"name": "stage 13 alone", "families": {"handwriting": _row(0.977, 0.92, 0.69, 0.86)},
                            "heldout": {"handwriting": {**_row(0.982, 0.931, 0.65, 0.86), "images": 1500}}}}
    block = rf.families_block(figures)
    assert "| stage 13 alone: mAP@0.5, exact sequences, p10 / median |" in block
    assert "| met | 0.977, 92 %, 0.69 / 0.86 |" in block and "0.895" not in block
    assert "| **handwriting (held out), 1500 scenes** | **0.984** | **95.1 %** | **0.81 / 0.90** | met " \
           "| 0.982, 93.1 %, 0.65 / 0.86 |" in block


def test_replace_block_keeps_the_rest_and_refuses_a_missing_block():
    text = "a\n<!-- tests:start -->\nold\n<!-- tests:end -->\nb\n"
    assert rf.replace_block(text, "tests", "new") == "a\n<!-- tests:start -->\nnew\n<!-- tests:end -->\nb\n"
    with pytest.raises(SystemExit, match="families"):
        rf.replace_block(text, "families", "x")


def test_readme_has_both_blocks():
    text = (ROOT / "README.md").read_text()
    for name in ("tests", "families"):
        assert f"<!-- {name}:start -->" in text and f"<!-- {name}:end -->" in text
