"""tools/run_rostests.py: rostest's exit code is the verdict, whatever its summary says.

A fake ``rostest`` (a shell script) prints a summary and exits with a chosen code, so the
runner's arithmetic is tested without a master.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = """[ROSTEST]-----------------------------------------------------------------------
SUMMARY
 * RESULT: {result}
 * TESTS: {tests}
 * ERRORS: 0
 * FAILURES: {failures}
"""


def run_runner(tmp_path: Path, tests: int, failures: int, exit_code: int, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "tests").mkdir(parents=True)
    (tmp_path / "tests" / "one.test").write_text("<launch/>\n")
    summary = SUMMARY.format(result="SUCCESS" if not failures else "FAIL", tests=tests, failures=failures)
    fake = tmp_path / "rostest"
    fake.write_text(f"#!/bin/sh\ncat <<'END'\n{summary}END\nexit {exit_code}\n")
    fake.chmod(0o755)
    env = dict(os.environ, ROSTEST=str(fake), ROSTEST_DIR=str(tmp_path / "tests"))
    return subprocess.run([sys.executable, str(ROOT / "tools" / "run_rostests.py"), *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)


@pytest.mark.parametrize("tests, failures, exit_code, verdict, total_line", [
    (3, 0, 0, 0, "rostest: 3 passed, 0 failed"),
    # The defect: a required node crashed (rostest exits 1) but every test case passed.
    (3, 0, 1, 1, "rostest: 2 passed, 1 failed"),
    (3, 1, 1, 1, "rostest: 2 passed, 1 failed"),
    (0, 0, 0, 1, "rostest: 0 passed, 1 failed"),  # ran nothing
])
def test_exit_code_is_the_verdict(tmp_path, tests, failures, exit_code, verdict, total_line):
    proc = run_runner(tmp_path, tests, failures, exit_code)
    assert proc.returncode == verdict, proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == total_line, proc.stdout
    if exit_code:
        assert f"FAILED ({tests} tests" in proc.stdout and f"rostest exit {exit_code}" in proc.stdout


def test_names_as_arguments_and_an_unknown_name_is_one_line(tmp_path):
    proc = run_runner(tmp_path / "a", 2, 0, 0, "one")
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "rostest: 2 passed, 0 failed"
    proc = run_runner(tmp_path / "b", 2, 0, 0, "nosuch")
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout.strip().splitlines() == [f"rostest: no nosuch.test in {tmp_path / 'b' / 'tests'} (known: one)"]
