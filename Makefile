# cube_detect: `make demo` (the simulated robot, end to end) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := source tools/env.sh

.PHONY: help setup test test-arm64 unit unit-fast py38 wheels readme-workspace rostest demo bench soak lint clean

help:
	@echo "make setup    install Debian ROS packages, .venv and the catkin workspace (idempotent)"
	@echo "make demo     detector + simulated camera and arm on a real roscore, a few cycles"
	@echo "make test     lint, unit tests (pytest) and integration tests (rostest)"
	@echo "make unit-fast  unit tests without the training pipeline (about 20 s)"
	@echo "make py38     the robot side on ROS Noetic's Python 3.8 (venv from pyenv 3.8, tflite-runtime)"
	@echo "make wheels   the robot requirements resolve to wheels on every robot platform (x86_64/arm64, Noetic/Debian 12)"
	@echo "make test-arm64  the robot side in Debian 12 and 11 arm64 roots under qemu: detect = x86's labels (~2 min cached)"
	@echo "make readme-workspace  the README's own-workspace block, run as written in a temporary workspace"
	@echo "make bench    speed/memory figures -> bench/results.json + README (TRAIN=1: also training time)"
	@echo "make soak     1000 protocol cycles + fault drills -> bench/soak.json + README (~4 min)"
	@echo "make lint     catkin_lint --strict, ruff and mypy (settings in pyproject.toml)"
	@echo "make clean    remove .venv, the catkin workspace and caches"

setup:
	@bash tools/setup.sh

unit: setup
	@$(ENV) && python -m pytest -q test

# Quick iterations: everything but the tests marked slow (training, export, robustness).
unit-fast: setup
	@$(ENV) && python -m pytest -q -m "not slow" test

py38:
	@bash tools/py38.sh

# Resolves requirements/runtime.txt per target (markers evaluated for that target, its whole
# manylinux tag list), installs nothing; needs PyPI.
wheels: setup
	@$(ENV) && python tools/check_wheels.py

# Debian arm64 roots (mmdebstrap, cached in ~/.cache/cube_detect/arm64) run the robot's
# requirements, `detect` and unit tests under qemu-user; the labels must match x86's.
test-arm64: setup
	@$(ENV) && python tools/test_arm64.py

rostest: setup
	@$(ENV) && python tools/run_rostests.py

lint: setup
	@$(ENV) && catkin_lint --strict --pkg cube_detect && echo "catkin_lint --strict: clean"
	@$(ENV) && ruff check . && mypy

# The README's own-workspace recipe as a newcomer follows it (rosdep lines skipped: network).
readme-workspace: setup
	@$(ENV) && python tools/check_readme_workspace.py

# bench/readme_figures.py times these stages one by one (its test keeps the two lists equal).
test: setup lint py38 wheels unit rostest readme-workspace

# roslaunch exits 0 whatever its required nodes do: the simulated arm's JSON summary says
# whether every cycle completed. DEMO_ARGS passes launch args, e.g. DEMO_ARGS="cycles:=10 seed:=3".
demo: setup
	@$(ENV) && result=$$(mktemp) && trap 'rm -f "$$result"' EXIT && \
	  roslaunch cube_detect demo.launch result_file:="$$result" $(DEMO_ARGS) && \
	  python -c 'import json, sys; s = json.load(open(sys.argv[1])); sys.exit(0 if s["cycles"] and s["completed"] == s["cycles"] else 1)' "$$result" 2>/dev/null \
	  || { echo "make demo: the simulated arm did not complete its cycles (see the log above)"; exit 1; }

# Measurements, not tests: a missed goal is reported in the table, never a failure (bench/run_bench.py).
bench: setup
	@$(ENV) && python -m bench.run_bench bench $(if $(filter 1,$(TRAIN)),--train)

# Exits 1 only when a cycle hung or the detector stopped serving; SOAK_CYCLES=N for a shorter run.
soak: setup
	@$(ENV) && python -m bench.run_bench soak --cycles $(or $(SOAK_CYCLES),1000)

clean:
	source tools/ws_path.sh && rm -rf "$$(cube_detect_ws_path "$$PWD")"
	rm -rf .venv .venv38 .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
