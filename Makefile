# Two commands (README): `make reproduce` runs the default (cpu) profile end to end;
# `make test` runs the test suite. Both create .venv on first use. Needs only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
KERNEL ?= wemem
# where independent trainings run: pool (worker processes, one per core), local (one at a time), ray
EXECUTOR ?= pool

.PHONY: reproduce test lab install kernel lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

kernel: install
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "Python (wemem)" >/dev/null

reproduce: kernel
	$(VENV)/bin/wemem -v reproduce --profile $(PROFILE) --kernel $(KERNEL) --executor $(EXECUTOR)

test: install
	$(PY) -m pytest -q

lab: kernel
	$(VENV)/bin/jupyter lab notebooks/

lint: install
	$(VENV)/bin/ruff check wemem tests benchmarks notebooks

clean:
	rm -rf outputs/*/ outputs/reports .pytest_cache
