# make demo  -> set up .venv, generate demo data, run pipelines/demo.yaml
# make test  -> set up .venv, run the whole test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel on these machines; GPU users: make setup TORCH_SPEC='torch==2.x.y' (or preinstall torch)
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench eval clean browser

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

# tests/report/test_browser.py renders the report and the preview in headless Chromium: install
# Debian's package when it is missing and we may (CI: root on a clean machine); otherwise say why
# that test will skip. MASKPIPE_CHROMIUM=/path/to/chrome points the test at another binary.
browser:
	@if [ -n "$$MASKPIPE_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (Debian package) for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium fonts-liberation libgl1-mesa-dri) >/dev/null 2>&1 || echo "could not install chromium: the browser test will skip"; \
	else echo "chromium is missing (apt-get install chromium as root): the browser test will skip"; fi

test: setup browser
	$(BIN)/python -m pytest tests -q

bench: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python scripts/bench.py

eval: setup
	$(BIN)/python scripts/eval_privacy.py

clean:
	rm -rf out data .pytest_cache
