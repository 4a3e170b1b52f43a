# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench faults clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/sopwatch demo --config config.example.yaml --out demo-out

test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check sopwatch tests bench faults
	$(BIN)/ruff format --check sopwatch tests bench faults

format: install
	$(BIN)/ruff check --fix sopwatch tests bench faults
	$(BIN)/ruff format sopwatch tests bench faults

bench: install
	$(BIN)/python bench/run.py

faults: install
	$(BIN)/python faults/run.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
