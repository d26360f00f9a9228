# vertkp: `make demo` runs the whole story on phantoms, `make test` runs the whole suite (`make test-fast`
# all but the slow end-to-end tests), `make install` sets up everything (they run it first).
PYTHON ?= python3
PIP = $(PYTHON) -m pip
# detectron2 is not on PyPI: it is built from its upstream source, after torch.
DETECTRON2_SOURCE ?= git+https://github.com/facebookresearch/detectron2.git
PYTEST_ARGS ?=
# e.g. make demo DEMO_ARGS="--num-images 40 SOLVER.MAX_ITER 100"
DEMO_ARGS ?=
STAMP = .make

.PHONY: install deps detectron2 test test-fast demo docker

install: deps detectron2

# Python dependencies (torch and torchvision included), reinstalled when setup.py changes.
# 'setuptools<81' again in the second line: torch asks for setuptools>=77, and pip would otherwise
# upgrade it to the newest, which has no pkg_resources for detectron2.
deps: $(STAMP)/deps
$(STAMP)/deps: setup.py
	$(PIP) install 'setuptools<81' wheel
	$(PIP) install -e '.[dev]' 'setuptools<81'
	@mkdir -p $(STAMP) && touch $@

# Only when `import detectron2` fails. setuptools<81: detectron2 still imports pkg_resources.
detectron2: deps
	@if $(PYTHON) -c "import detectron2" 2>/dev/null; then echo "detectron2 is installed"; \
	else $(PIP) install --no-build-isolation '$(DETECTRON2_SOURCE)'; fi

test: deps
	@$(PYTHON) -c "import detectron2" 2>/dev/null \
	  || $(PIP) install --no-build-isolation '$(DETECTRON2_SOURCE)' \
	  || echo "vertkp: detectron2 could not be installed from $(DETECTRON2_SOURCE); the tests that need it will be SKIPPED (see README, Install)"
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# The inner loop: everything but the end-to-end tests marked slow (about 2 minutes on 2 cores).
test-fast: deps
	$(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS)

# Phantoms -> convert -> train -> predict -> evaluate into output/demo (vertkp/demo.py). Stops at
# once, with the command to run, when detectron2 is missing and cannot be installed.
demo: deps
	@$(PYTHON) -c "import detectron2" 2>/dev/null \
	  || $(PIP) install --no-build-isolation '$(DETECTRON2_SOURCE)' \
	  || { echo "vertkp: detectron2 could not be installed. Install it from its upstream source, then run make demo again:"; \
	       echo "    $(PIP) install 'setuptools<81' && $(PIP) install --no-build-isolation '$(DETECTRON2_SOURCE)'"; exit 2; }
	$(PYTHON) tools/demo.py $(DEMO_ARGS)

# The CUDA image (docker/README.md).
docker:
	docker build -f docker/Dockerfile -t vertkp .
