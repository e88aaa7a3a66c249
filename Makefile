# `make demo` and `make test` each create .venv when it is missing, install gan-aug into it, and run.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test quick install clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gan-aug demo --out demo_out

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The edit loop's tier: everything but the tests marked slow.
quick: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow'

clean:
	rm -rf $(VENV) demo_out .pytest_cache
