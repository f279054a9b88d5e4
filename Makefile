# Two commands do everything from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned: these machines install 2.13.0 (CPU build) from local disk in seconds;
# an unpinned torch would download a multi-gigabyte CUDA build.
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test install fuzz bench corpus-check primer clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Findings on the fixtures (exit 0 on purpose: they are there to be found), then the same
# run with the runtime checker confirming them with real torch.
demo: $(STAMP)
	$(BIN)/torchlint check --no-cache --exit-zero fixtures/
	@echo
	@echo "== the same, confirmed at runtime (torch on CPU / meta device) =="
	$(BIN)/torchlint check --no-cache --exit-zero --runtime --select TL1,TL2,TL303,TL402,TL403 fixtures/

test: $(STAMP)
	$(BIN)/python -m pytest

# Long fuzzing run (the default test run has a small budget).
fuzz: $(STAMP)
	TORCHLINT_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest tests/test_fuzz.py -q

# Speed against the libcst parse floor and TorchFix (downloads pinned wheels).
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# Every fix applied to copies of timm and transformers: must still parse and compile.
corpus-check: $(STAMP)
	$(BIN)/python scripts/corpus_check.py

# Precision on real code: pinned research packages and the library corpus against the triaged
# snapshot benchmarks/primer/findings.txt, plus every fix applied to copies (downloads; cache in
# ~/.cache/torchlint-primer). `make primer PRIMER_ARGS=--update` rewrites the snapshot.
primer: $(STAMP)
	$(BIN)/python scripts/primer.py $(PRIMER_ARGS)

clean:
	rm -rf $(VENV) .torchlint_cache .bench build *.egg-info
