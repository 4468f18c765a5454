#!/usr/bin/env bash
# The robot side on ROS Noetic's Python 3.8 (`make py38`, part of `make test`): a venv from this
# machine's pyenv 3.8 with requirements/robot-py38-test.txt (the robot's runtime set, pip's
# OpenCV), then the robot-side unit tests and `detect` on a synthetic frame there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where is a 3.8? PY38=..., else pyenv's newest 3.8.*, else python3.8 on PATH. Debian 12 has
# none and no reachable registry ships one: without it the check is skipped with one line,
# except on CI (CI=true), whose machines have pyenv's 3.8: there a skip is a failure.
if [ -n "${PY38:-}" ] && ! "$PY38" -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null; then
  echo "py38: FAILED: PY38=$PY38 is not a Python 3.8 interpreter" >&2
  exit 1
fi
if [ -z "${PY38:-}" ]; then
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.8.*/bin/python "$(command -v python3.8 || true)"; do
    if [ -x "$candidate" ] && "$candidate" -c "import sys; assert sys.version_info[:2] == (3, 8)" 2>/dev/null; then PY38=$candidate; break; fi
  done
fi
if [ -z "${PY38:-}" ] || ! "$PY38" -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null; then
  if [ "${CI:-}" = "true" ]; then
    echo "py38: FAILED: no Python 3.8 found (${PY38:-none in pyenv versions/3.8.* or on PATH}); CI must run these checks" >&2
    exit 1
  fi
  echo "py38: SKIPPED the Python 3.8 (ROS Noetic) checks: no Python 3.8 here (PY38=/path/to/python3.8 names one)" >&2
  exit 0
fi
VENV=.venv38
req_hash=$(cat requirements/runtime.txt requirements/robot-py38-test.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat $VENV/.requirements-installed 2>/dev/null)" != "$req_hash" ]; then
  echo "py38: creating $VENV from $PY38"
  rm -rf "$VENV"
  "$PY38" -m venv "$VENV"
  { "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements/robot-py38-test.txt 2>&1; } \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
  echo "$req_hash" > "$VENV/.requirements-installed"
fi
export PYTHONPATH=$PWD/src
# Robot-side tests (no TensorFlow, no ROS master): inference, images, protocol, boxes, capture,
# data sets, pictures, and the worker pools with pip's OpenCV.
"$VENV/bin/python" -m pytest -q -p no:cacheprovider test/test_boxes.py test/test_images.py \
  test/test_inference.py test/test_reader.py test/test_paramstore.py test/test_protocol.py test/test_arm.py test/test_handshake.py \
  test/test_capture.py test/test_dataset.py \
  test/test_visualize.py test/test_workers.py
frame=$(mktemp -d)
trap 'rm -rf "$frame"' EXIT
"$VENV/bin/python" -c "import cv2, sys; from cube_detect.synth import render_indexed; cv2.imwrite(sys.argv[1], render_indexed(5, 0, family='topdown')[0])" "$frame/frame.png"
"$VENV/bin/python" -m cube_detect detect "$frame/frame.png" --json "$frame/out.json"
"$VENV/bin/python" -c "import json, sys; r = json.load(open(sys.argv[1])); assert r[0]['detections'], r; print('py38: detect found', [d['label'] for d in r[0]['detections']])" "$frame/out.json"
