# Two commands do everything from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned: these machines install 2.13.0 (CPU build) from local disk in seconds;
# an unpinned torch would download a multi-gigabyte CUDA build.
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test install fuzz corpus-check bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/torchlint check --exit-zero fixtures/

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .torchlint_cache build *.egg-info
