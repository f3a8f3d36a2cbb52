# Two commands a newcomer needs: `make demo` and `make test`. Both create the
# virtual environment and install the pinned dependencies on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fraud demo

test: $(STAMP)
	$(BIN)/pytest

# Speed and scale, measured against a baseline in the same run (see benchmarks/).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.handbook_evaluation

clean:
	rm -rf $(VENV) .fraud-data
