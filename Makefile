# make demo  -> set up .venv, generate demo data, run pipelines/demo.yaml
# make test  -> set up .venv, run the whole test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel on these machines; GPU users: make setup TORCH_SPEC='torch==2.x.y' (or preinstall torch)
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench eval clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

data/demo/.done: scripts/gen_demo.py | $(STAMP)
	$(BIN)/python scripts/gen_demo.py --out data/demo
	touch $@

demo: setup data/demo/.done
	MASKPIPE_PII_KEY="$${MASKPIPE_PII_KEY:-demo-key-not-secret-change-me}" $(BIN)/maskpipe run pipelines/demo.yaml

test: setup
	$(BIN)/python -m pytest tests -q

bench: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python scripts/bench.py

eval: setup
	$(BIN)/python scripts/eval_privacy.py

clean:
	rm -rf out data .pytest_cache
