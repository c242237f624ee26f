# energy-edge: the two commands a fresh machine needs are `make run` and `make test`.
# Both depend on `make install`, which is idempotent and fast when nothing changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# One distribution per tool (ARCHITECTURE.md, "Tool packages"); tools/cli is `energy-edge`, the front.
TOOLS  := tools/emulator tools/simulator tools/run tools/bench tools/cli
# Everything pip installs for development; a change to any of these re-runs the install.
INSTALL_INPUTS := pyproject.toml shared/pyproject.toml requirements-dev.txt $(TOOLS:%=%/pyproject.toml) \
                  $(wildcard modules/*/requirements.txt) $(wildcard modules/*/pyproject.toml) \
                  scripts/install-system-deps.sh

.PHONY: install run test lint typecheck unit schemas clean tools reliability images pymodbus-lowest

install: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	bash scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e shared \
	    -e tools/emulator -e 'tools/simulator[profiles]' -e tools/run -e 'tools/bench[profiles]' -e tools/cli \
	    $(foreach m,$(wildcard modules/*/pyproject.toml),-e $(dir $(m)))
	touch $(STAMP)

run: install
	$(BIN)/energy-edge run

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint tools
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered
	$(MAKE) pymodbus-lowest

# The lowest pymodbus of the range tools/simulator/pyproject.toml declares (tools/simulator/tests/test_pymodbus_range.py keeps the two
# equal): a venv with only that pymodbus of its own, everything else taken from .venv through a .pth file,
# runs the suites that talk Modbus (the simulator's servers, the device base package, the modules).
PYMODBUS_LOWEST := 3.14.0
LOWEST := .venv-pymodbus-lowest
pymodbus-lowest: install
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet pymodbus==$(PYMODBUS_LOWEST)
	$(LOWEST)/bin/python -c 'import site, sys; open(site.getsitepackages()[0] + "/energy-edge-venv.pth", "w").write("import site; site.addsitedir(%r)\n" % sys.argv[1])' \
	    "$$($(BIN)/python -c 'import site; print(site.getsitepackages()[0])')"
	$(LOWEST)/bin/python -c 'import pymodbus, sys; sys.exit(pymodbus.__version__ != "$(PYMODBUS_LOWEST)")'
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider tools/simulator/tests shared/tests tests/modules

# The reliability suite's long form: >= 10 000 generated inputs and an accelerated week of soak with faults.
reliability: install
	$(BIN)/python benchmarks/reliability.py fuzz --examples 4000 --json .edge/reliability-fuzz.json
	$(BIN)/python benchmarks/reliability.py soak --duration 7d --accel 1200 --json .edge/reliability-soak.json

# Validators tests/devops shells out to (checkov, ansible-lint), each in its own venv under .venv-tools/.
tools: .venv-tools/.installed

.venv-tools/.installed: scripts/install-devops-tools.sh $(wildcard scripts/tools/*.txt)
	bash scripts/install-devops-tools.sh $(PYTHON)
	touch $@

# Every module image and the simulator image for amd64 (scripts/build_images.py: a Debian stand-in base where
# the official Python image cannot be pulled, dependencies from host-built wheels, network "none" while building).
images: install
	$(BIN)/python scripts/build_images.py

schemas: install
	$(BIN)/python -m energy_edge_base.schemas docs/schemas

clean:
	rm -rf $(VENV) $(LOWEST) .edge .pytest_cache .mypy_cache .ruff_cache
