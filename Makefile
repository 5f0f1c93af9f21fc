# Two commands (README): `make reproduce` runs the default (cpu) profile end to end;
# `make test` runs the test suite. Both create .venv on first use. Needs only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
KERNEL ?= wemem
# where independent trainings run: pool (worker processes, one per core), local (one at a time), ray
EXECUTOR ?= pool
# runs in flight at once (dependency order; 10_time_cost's controlled timing runs alone). 1 on a
# 2-core machine: the pool's workers already keep both cores busy (2 was slower: 1,146 s vs 962 s)
JOBS ?= 1
# `make smoke`: every run of SMOKE_PROFILE at smoke scale (params/smoke.yaml) on generated stand-ins
# of the paper's datasets (`wemem data fixtures`), from an empty cache, outputs in outputs/smoke/
SMOKE_PROFILE ?= paper
SMOKE_DIR ?= .smoke

.PHONY: reproduce smoke test lab install kernel lint clean

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
	  --profile $(SMOKE_PROFILE) --smoke --kernel $(KERNEL) --executor $(EXECUTOR) --jobs $(JOBS)

test: install
	$(PY) -m pytest -q

lab: kernel
	$(VENV)/bin/jupyter lab notebooks/

lint: install
	$(VENV)/bin/ruff check wemem tests benchmarks notebooks

clean:
	rm -rf outputs/*/ outputs/reports .pytest_cache $(SMOKE_DIR)
