# Two commands (README): `make reproduce` runs the default (cpu) profile end to end;
# `make test` runs the test suite. Both create .venv on first use. Needs only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
KERNEL ?= wemem
# where independent trainings run: pool (worker processes, one per core), local (one at a time), ray
EXECUTOR ?= pool
# runs in flight at once, in dependency order; 10 (`exclusive: always`, its timing) runs alone; under
# the pool the kernels' workers share one slot per core (wemem/experiment/slots.py), so a kernel's
# own work (start, imports, in-process attacks, figures, report) runs beside another's trainings
JOBS ?= 2
# `make smoke`: every run of SMOKE_PROFILE at smoke scale (params/smoke.yaml) on generated stand-ins
# of the paper's datasets (`wemem data fixtures`), from an empty cache, outputs in outputs/smoke/
SMOKE_PROFILE ?= paper
SMOKE_DIR ?= .smoke
# smoke runs are small: each kernel trains in its own process (no worker pool to start) and two
# runs overlap (only 10's timing runs alone)
SMOKE_EXECUTOR ?= local
SMOKE_JOBS ?= 2

.PHONY: reproduce smoke test test-slow lab install kernel lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

kernel: install
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "Python (wemem)" >/dev/null

reproduce: kernel
	$(VENV)/bin/wemem -v reproduce --profile $(PROFILE) --kernel $(KERNEL) --executor $(EXECUTOR) --jobs $(JOBS)

smoke: kernel
	rm -rf $(SMOKE_DIR)/cache outputs/smoke
	$(VENV)/bin/wemem data fixtures $(SMOKE_DIR)/data
	WEMEM_DATA=$(SMOKE_DIR)/data WEMEM_CACHE=$(SMOKE_DIR)/cache $(VENV)/bin/wemem -v reproduce \
	  --profile $(SMOKE_PROFILE) --smoke --kernel $(KERNEL) --executor $(SMOKE_EXECUTOR) --jobs $(SMOKE_JOBS) --keep-going

test: install
	$(PY) -m pytest -q

# the longer end-to-end checks (Ray clusters, a batch killed and rerun): .ci/run runs them after `test`
test-slow: install
	$(PY) -m pytest -q -m slow

lab: kernel
	$(VENV)/bin/jupyter lab notebooks/

lint: install
	$(VENV)/bin/ruff check wemem tests benchmarks notebooks

clean:
	rm -rf outputs/*/ outputs/reports .pytest_cache $(SMOKE_DIR)
