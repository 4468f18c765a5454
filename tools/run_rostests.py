#!/usr/bin/env python3
"""Run every test/*.test with rostest (each on its own fresh roscore) and total the results.

Exit non-zero if any rostest fails, errors, runs no test case, or exits non-zero whatever its
summary says (a required node that crashed, a test node that never connected); the last line
reads ``rostest: N passed, N failed``. ``ROSTESTS=camera,detector`` (or the names as
arguments) runs only those files;
``ROSTEST=/path/to/rostest`` runs another rostest executable (the unit test's fake one).
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parent.parent


def run_one(test_file: Path):
    """Run one .test file; returns (passed, failed) test counts for the total line."""
    started = time.monotonic()
    proc = subprocess.run(
        [os.environ.get("ROSTEST", "rostest"), "--text", "cube_detect", test_file.name],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    out = proc.stdout
    tests = re.search(r"\* TESTS: (\d+)", out)
    errors = re.search(r"\* ERRORS: (\d+)", out)
    failures = re.search(r"\* FAILURES: (\d+)", out)
    total = int(tests.group(1)) if tests else 0
    bad = (int(errors.group(1)) if errors else 0) + (int(failures.group(1)) if failures else 0)
    ok = proc.returncode == 0 and total > 0 and bad == 0
    if not ok or os.environ.get("ROSTEST_VERBOSE"):
        print(out[-20000:])
    if not ok:
        # A file that ran nothing, or whose rostest exited non-zero with a clean summary, still
        # counts as one failure: the exit code is the verdict, the summary only the detail.
        bad = max(bad, 1)
    why = f", rostest exit {proc.returncode}" if proc.returncode else ""
    print(f"rostest {test_file.name}: {'ok' if ok else 'FAILED'} "
          f"({total} tests, {bad} failed{why}, {time.monotonic() - started:.0f} s)", flush=True)
    return max(total - bad, 0), bad


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="only these test/NAME.test files (as ROSTESTS=NAME,NAME; default: all)")
    args = parser.parse_args(argv)
    wanted = args.names or [w for w in os.environ.get("ROSTESTS", "").split(",") if w]
    folder = Path(os.environ.get("ROSTEST_DIR", ROOT / "test"))
    files = sorted(folder.glob("*.test"))
    unknown = sorted(set(wanted) - {f.stem for f in files})
    if unknown:
        print(f"rostest: no {', '.join(n + '.test' for n in unknown)} in {folder} "
              f"(known: {', '.join(f.stem for f in files)})")
        return 2
    if wanted:
        files = [f for f in files if f.stem in wanted]
    if not files:
        print("rostest: no .test files found")
        return 1
    passed = failed = 0
    for test_file in files:
        ok_count, bad_count = run_one(test_file)
        passed, failed = passed + ok_count, failed + bad_count
    print(f"rostest: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
