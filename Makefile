# cube_detect: `make demo` (the simulated robot, end to end) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := source tools/env.sh

.PHONY: help setup test unit rostest demo bench lint clean

help:
	@echo "make setup    install Debian ROS packages, .venv and the catkin workspace (idempotent)"
	@echo "make demo     detector + simulated camera and arm on a real roscore, a few cycles"
	@echo "make test     unit tests (pytest) and integration tests (rostest)"
	@echo "make bench    speed/memory figures -> bench/results.json"
	@echo "make lint     catkin_lint --strict"
	@echo "make clean    remove .venv, the catkin workspace and caches"

setup:
	@bash tools/setup.sh

unit: setup
	@$(ENV) && python -m pytest -q test

rostest: setup
	@$(ENV) && python tools/run_rostests.py

lint: setup
	@$(ENV) && catkin_lint --strict --pkg cube_detect

test: setup
	@$(ENV) && catkin_lint --strict --pkg cube_detect && echo "catkin_lint --strict: clean"
	@$(ENV) && python -m pytest -q test
	@$(ENV) && python tools/run_rostests.py

# roslaunch exits 0 whatever its required nodes do: the simulated arm's JSON summary says
# whether every cycle completed. DEMO_ARGS passes launch args, e.g. DEMO_ARGS="cycles:=10 seed:=3".
demo: setup
	@$(ENV) && result=$$(mktemp) && trap 'rm -f "$$result"' EXIT && \
	  roslaunch cube_detect demo.launch result_file:="$$result" $(DEMO_ARGS) && \
	  python -c 'import json, sys; s = json.load(open(sys.argv[1])); sys.exit(0 if s["cycles"] and s["completed"] == s["cycles"] else 1)' "$$result" 2>/dev/null \
	  || { echo "make demo: the simulated arm did not complete its cycles (see the log above)"; exit 1; }

bench: setup
	@echo "make bench: not implemented yet (benchmark issue)"; exit 1

clean:
	source tools/ws_path.sh && rm -rf "$$(cube_detect_ws_path "$$PWD")"
	rm -rf .venv .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
